"""Route templates as the Functions host understands them: parsing, matching, precedence."""

import pytest

from localdev.routing import Route, RouteTemplateError, Router, decode_path, split_template

PRODUCT_LIKE_ROUTES = [
    ("rooms", ["GET", "POST"], "rooms"),
    ("rooms/{roomId}", ["GET", "PATCH", "DELETE"], "room"),
    ("rooms/{roomId}/participants", ["GET"], "participants"),
    ("rooms/{roomId}/participants:update", ["POST"], "participants_update"),
    ("identities", ["POST"], "create_identity"),
    ("identities/{id}", ["DELETE"], "delete_identity"),
    ("identities/{id}/:issueAccessToken", ["POST"], "issue_token"),
    ("identities/{id}/:revokeAccessTokens", ["POST"], "revoke_tokens"),
    ("calling/callConnections:connect", ["POST"], "connect"),
    ("calling/callConnections/{id}", ["GET", "DELETE"], "get_call"),
    ("calling/callConnections/{id}:terminate", ["POST"], "terminate"),
    ("items/{id:int}", None, "item_int"),
    ("items/{name:alpha}", None, "item_alpha"),
    ("items/new", None, "item_new"),
    ("items/{other}", None, "item_any"),
    ("opt/{name?}", None, "optional"),
    ("defaulted/{name=world}", None, "defaulted"),
    ("files/{*rest}", None, "catch_all"),
    ("docs/{file}.{ext?}", None, "document"),
    ("guid/{id:guid}", None, "guid"),
    ("bounded/{n:min(10):max(20)}", None, "bounded"),
    ("code/{value:regex(^\\d{{3}}$)}", None, "regex"),
    ("len/{value:length(2,3)}", None, "length"),
]


@pytest.fixture(scope="module")
def router():
    return Router.build(PRODUCT_LIKE_ROUTES, prefix="")


@pytest.mark.parametrize("method, path, target, params", [
    ("GET", "/rooms", "rooms", {}),
    ("POST", "/rooms/", "rooms", {}),
    ("GET", "/rooms/99", "room", {"roomId": "99"}),
    ("GET", "/ROOMS/99", "room", {"roomId": "99"}),
    ("GET", "/rooms/99/participants", "participants", {"roomId": "99"}),
    ("POST", "/rooms/99/participants:update", "participants_update", {"roomId": "99"}),
    ("POST", "/identities/8%3Aacs%3Aabc_1/:issueAccessToken", "issue_token", {"id": "8:acs:abc_1"}),
    ("POST", "/identities/8:acs:abc/:revokeAccessTokens", "revoke_tokens", {"id": "8:acs:abc"}),
    ("DELETE", "/identities/8%3Aacs%3Aabc", "delete_identity", {"id": "8:acs:abc"}),
    ("POST", "/calling/callConnections:connect", "connect", {}),
    ("POST", "/calling/callConnections/c-1:terminate", "terminate", {"id": "c-1"}),
    ("POST", "/calling/callConnections/a%3Ab:terminate", "terminate", {"id": "a:b"}),
    ("GET", "/calling/callConnections/c-1", "get_call", {"id": "c-1"}),
    ("GET", "/items/42", "item_int", {"id": "42"}),
    ("GET", "/items/-7", "item_int", {"id": "-7"}),
    ("GET", "/items/99999999999", "item_any", {"other": "99999999999"}),  # over int32
    ("GET", "/items/abc", "item_alpha", {"name": "abc"}),
    ("GET", "/items/new", "item_new", {}),
    ("GET", "/items/a1", "item_any", {"other": "a1"}),
    ("GET", "/opt", "optional", {}),
    ("GET", "/opt/x", "optional", {"name": "x"}),
    ("GET", "/defaulted", "defaulted", {"name": "world"}),
    ("GET", "/defaulted/you", "defaulted", {"name": "you"}),
    ("GET", "/files", "catch_all", {}),
    ("GET", "/files/a/b/c.txt", "catch_all", {"rest": "a/b/c.txt"}),
    ("GET", "/files/a%2Fb%20c", "catch_all", {"rest": "a/b c"}),
    ("GET", "/docs/report.final.pdf", "document", {"file": "report.final", "ext": "pdf"}),
    ("GET", "/docs/readme", "document", {"file": "readme"}),
    ("GET", "/guid/0f8fad5b-d9cb-469f-a165-70867728950e", "guid",
     {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
    ("GET", "/bounded/15", "bounded", {"n": "15"}),
    ("GET", "/code/123", "regex", {"value": "123"}),
    ("GET", "/len/ab", "length", {"value": "ab"}),
])
def test_matches(router, method, path, target, params):
    resolution = router.resolve(method, path)
    assert resolution.route is not None, path
    assert resolution.route.target == target
    assert dict(resolution.route_params) == params


@pytest.mark.parametrize("path", [
    "/nothing", "/rooms/1/2/3", "/guid/not-a-guid", "/bounded/9", "/bounded/21",
    "/code/1234", "/len/abcd", "/", "/identities/x/issueAccessToken",
])
def test_no_match(router, path):
    resolution = router.resolve("GET", path)
    assert resolution.route is None and not resolution.method_not_allowed


def test_wrong_method_reports_allowed_methods(router):
    resolution = router.resolve("PUT", "/rooms/1")
    assert resolution.route is None
    assert resolution.method_not_allowed
    assert resolution.allowed_methods == {"GET", "PATCH", "DELETE"}


def test_same_template_split_by_method():
    router = Router.build([("rooms/{id}", ["GET"], "get"), ("rooms/{id}", ["PATCH"], "patch")],
                          prefix="")
    assert router.resolve("GET", "/rooms/1").route.target == "get"
    assert router.resolve("PATCH", "/rooms/1").route.target == "patch"
    assert router.resolve("PUT", "/rooms/1").allowed_methods == {"GET", "PATCH"}


def test_literals_win_regardless_of_registration_order():
    router = Router.build([("{a}/{b}", None, "params"), ("x/{b}", None, "half"),
                           ("x/y", None, "literal"), ("{*all}", None, "catch_all")], prefix="")
    assert router.resolve("GET", "/x/y").route.target == "literal"
    assert router.resolve("GET", "/x/z").route.target == "half"
    assert router.resolve("GET", "/w/z").route.target == "params"
    assert router.resolve("GET", "/w/z/v").route.target == "catch_all"


@pytest.mark.parametrize("prefix, path, expected", [
    ("api", "/api/rooms/1", "room"),
    ("api", "/API/rooms/1", "room"),
    ("api", "/rooms/1", None),
    ("api", "/apirooms/1", None),
    ("v1/x", "/v1/x/rooms/1", "room"),
    ("", "/rooms/1", "room"),
])
def test_route_prefix(prefix, path, expected):
    router = Router.build([("rooms/{id}", None, "room")], prefix=prefix)
    route = router.resolve("GET", path).route
    assert (route.target if route else None) == expected


def test_empty_route_is_the_prefix_itself():
    router = Router.build([("", None, "root")], prefix="api")
    assert router.resolve("GET", "/api").route.target == "root"
    assert router.resolve("GET", "/api/").route.target == "root"


def test_decode_path_keeps_encoded_slashes_in_one_segment():
    assert decode_path("/a%3Ab/c%2Fd") == "/a:b/c%2Fd"
    assert decode_path("/plain") == "/plain"


@pytest.mark.parametrize("template", [
    "a/{b", "a/b}", "a//b", "{x}/{x}", "{*rest}/more", "{a}{b}", "{x:unknown}",
    "{a?}.{b}", "{*rest?}", "{}",
])
def test_invalid_templates(template):
    with pytest.raises(RouteTemplateError):
        split_template(template)


def test_precedence_is_computed_once_per_route():
    route = Route("rooms/{id:int}/x{y}/{*rest}", None, None)
    assert route.precedence == (1, 2, 2, 5)
