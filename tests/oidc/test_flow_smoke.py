import json

from tests.oidc.conftest import RelyingParty, sign_in


def test_code_flow_end_to_end(client, connector, user):
    sign_in(client)
    rp = RelyingParty(client, connector)
    tokens = rp.tokens()
    claims = rp.id_token_claims(tokens["id_token"])
    assert claims["sub"] == str(user.pk)
    assert claims["nonce"] == rp.nonce
    info = rp.userinfo(tokens["access_token"])
    assert info.status_code == 200, info.content
    print(claims, json.loads(info.content))
    refreshed = rp.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
