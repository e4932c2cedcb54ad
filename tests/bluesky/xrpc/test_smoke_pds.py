import pytest

from integrations.bluesky.xrpc.client import PdsClient


@pytest.mark.pds
def test_client_talks_to_the_local_pds(pds, account):
    client = PdsClient(pds.url)
    description = client.describe_server()
    assert description.available_user_domains == [".test"]
    session = client.create_session(account.handle, account.app_passwords[0])
    assert session.did == account.did
    assert session.access_claims["scope"] == "com.atproto.appPass"
    profile = client.get_profile(session.access_jwt, session.did)
    assert profile.display_name == ""
    rotated = client.refresh_session(session.refresh_jwt)
    assert rotated.refresh_jwt != session.refresh_jwt
    assert pds.refresh_count(account.did) == 1
