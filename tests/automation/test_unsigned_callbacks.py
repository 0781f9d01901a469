"""Without a callback signing key the app still runs; its key routes say why there is nothing to fetch."""
import pytest
import requests

from localdev.testing import local_service
from tests.support.answers import ANSWERS

pytestmark = pytest.mark.stack


def test_key_routes_answer_404_in_acs_error_shape_without_a_key():
    with local_service(env={"ANTEROOM_CALLBACK_SIGNING_KEY": ""}) as service:
        ANSWERS.serve(service.base_url, service.ca_file)
        for path in ("/calling/.well-known/acsopenidconfiguration", "/calling/keys"):
            answer = requests.get(service.base_url + path, verify=service.ca_file, timeout=10)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "NotFound"
            assert "ANTEROOM_CALLBACK_SIGNING_KEY" in answer.json()["error"]["message"]
