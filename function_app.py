"""Azure Functions entry point (v2 programming model): composes the blueprints, nothing else."""
import azure.functions as func

from functions import call_automation, calls, events, identity, maintenance, openapi, rooms

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(rooms.bp)
app.register_functions(identity.bp)
app.register_functions(calls.bp)
app.register_functions(call_automation.bp)
app.register_functions(events.bp)
app.register_functions(maintenance.bp)
app.register_functions(openapi.bp)
