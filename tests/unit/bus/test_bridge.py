"""NATS credentials come from the environment, never from code."""
from computepods.bus.bridge import Credentials


def test_user_password_token_and_creds_file_from_env():
    c = Credentials.from_env({"CP_NATS_USER": "u", "CP_NATS_PASSWORD": "p",
                              "CP_NATS_TOKEN": "t", "CP_NATS_CREDS": "/x/y.creds"})
    assert c.connect_options() == {"user": "u", "password": "p", "token": "t",
                                   "user_credentials": "/x/y.creds",
                                   "inbox_prefix": "_INBOX.u"}   # the user's own replies


def test_nothing_set_means_no_auth_options():
    assert Credentials.from_env({}).connect_options() == {}
