"""Token credential for playback runs; imported by the Identity suite, never used live."""
from azure.core.credentials import AccessToken


class FakeTokenCredential:
    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken("fake-token", 0)
