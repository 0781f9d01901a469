"""Async token credential for playback runs; imported by the Identity suite, never used live."""
from azure.core.credentials import AccessToken


class AsyncFakeCredential:
    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken("fake-token", 0)

    async def close(self) -> None:
        pass
