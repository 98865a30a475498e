"""OAuth refresh, fatal 401/403 messages, and secrets that never appear in any output."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from target_hubspot_upsert.core.errors import HubSpotAuthError, HubSpotConfigError, RetriesExhausted
from target_hubspot_upsert.http.auth import OAuthTokenProvider
from target_hubspot_upsert.http.transport import Transport
from target_hubspot_upsert.hubspot.client import HubSpotClient
from target_hubspot_upsert.singer.target import TargetHubSpotUpsert

from .conftest import TOKEN
from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    contact,
    contacts_with_states,
    enable_oauth,
    oauth_config,
    record,
    run_cli,
    run_in_process,
    schema,
    state,
)


def test_oauth_tokens_expiring_every_second_under_concurrency(sim):
    enable_oauth(sim, ttl=1, rotate=True)
    sim.configure(latency_ms=120, latency_jitter_ms=40)
    run = run_in_process(
        oauth_config(sim, max_concurrent_requests=8, batch_size_rows=50),
        contacts_with_states(5000, 500), real_time=True,
    )
    assert run.error is None, run.error
    assert len(sim.objects("contacts")) == 5000
    refreshes = run.target.runtime.client.auth.refreshes
    assert refreshes >= 2
    assert sim.stats["token_grants"] == refreshes  # one refresh at a time, none wasted
    statuses = {e.status for e in sim.upsert_requests()}
    assert statuses == {200}  # refreshed ahead of expiry: no request hit an expired token
    assert run.states[-1] == {"n": 5000}


def test_oauth_v3_token_url(sim):
    enable_oauth(sim)
    cfg = oauth_config(sim, oauth_token_url=f"{sim.base_url}/oauth/v3/token")
    run = run_in_process(cfg, contacts_with_states(10, 10))
    assert run.error is None
    assert [e.path for e in sim.requests if e.path.startswith("/oauth")] == ["/oauth/v3/token"]


def test_bad_refresh_token_is_fatal_and_names_the_settings(sim):
    enable_oauth(sim)
    run = run_in_process(oauth_config(sim, refresh_token="rtoken-wrong-000"), contacts_with_states(10, 10))
    assert isinstance(run.error, HubSpotAuthError)
    assert "refresh_token" in str(run.error) and "BAD_REFRESH_TOKEN" in str(run.error)
    assert "rtoken-wrong-000" not in str(run.error)


def test_token_endpoint_failures_are_retried(sim, caplog):
    enable_oauth(sim)
    sim.script_oauth_faults([503, 500, 429])
    run = run_in_process(oauth_config(sim), contacts_with_states(20, 10))
    assert run.error is None, run.error
    assert len(sim.objects("contacts")) == 20
    assert [e.status for e in sim.requests if e.path.startswith("/oauth")] == [503, 500, 429, 200]
    assert "OAuth token request: 503; retry 1 of 8" in caplog.text


def test_token_endpoint_down_is_fatal_after_max_retries(sim):
    enable_oauth(sim)
    sim.script_oauth_faults([502] * 10)
    run = run_in_process(oauth_config(sim, max_retries=2), contacts_with_states(20, 10))
    assert isinstance(run.error, RetriesExhausted)
    assert "OAuth token request kept failing (502) after 2 retries" in str(run.error)
    assert len([e for e in sim.requests if e.path.startswith("/oauth")]) == 3
    assert sim.upsert_requests() == [] and run.states == []


def test_a_token_that_expired_in_flight_is_refreshed_once_through_the_shared_transport(sim):
    enable_oauth(sim, ttl=0.3)
    transport = Transport(timeout=5)
    provider = OAuthTokenProvider(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN,
        token_url=f"{sim.base_url}/oauth/v1/token", transport=transport,
        clock=lambda: 0.0,  # frozen: the provider never refreshes ahead, so HubSpot's 401 must do it
    )
    client = HubSpotClient(sim.base_url, provider, transport=transport)
    assert client.get_properties("contacts").status == 200
    time.sleep(0.5)
    assert client.get_properties("contacts").status == 200
    assert provider.refreshes == 2
    assert [(e.path.split("/")[1], e.status) for e in sim.requests] == [
        ("oauth", 200), ("crm", 200), ("crm", 401), ("oauth", 200), ("crm", 200),
    ]


def test_403_names_the_missing_scope_and_does_not_retry(sim, config):
    sim.configure(token_scopes={TOKEN: ["crm.schemas.contacts.read"]})
    run = run_in_process(config, contacts_with_states(10, 10))
    assert isinstance(run.error, HubSpotAuthError)
    assert "crm.objects.contacts.write" in str(run.error) and "access_token" in str(run.error)
    assert len(sim.upsert_requests()) == 1


def test_401_is_fatal_without_retry_storm(sim, config):
    run = run_in_process({**config, "access_token": "wrong-token-xyz"}, contacts_with_states(10, 10))
    assert isinstance(run.error, HubSpotAuthError)
    assert "401" in str(run.error) and "access_token" in str(run.error)
    assert len(sim.requests) == 1  # the catalogue read failed once; nothing retried


# --- secrets never leak -------------------------------------------------------------------

LEAK_SCENARIOS = ["success", "retry", "401", "403", "rejected", "crash", "debug"]


def all_output(run, tmp_path) -> str:
    files = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.name != "config.json")
    return run.stdout + run.stderr + files


@pytest.mark.parametrize("scenario", LEAK_SCENARIOS)
@pytest.mark.parametrize("auth", ["token", "oauth"])
def test_secrets_never_appear_in_any_output(sim, tmp_path, scenario, auth):
    enable_oauth(sim, rotate=True)
    cfg = {"access_token": TOKEN, "api_base_url": sim.base_url} if auth == "token" else oauth_config(sim)
    cfg.update({
        "rejected_records_path": str(tmp_path / "out" / "rejected.jsonl"),
        "run_report_path": str(tmp_path / "out" / "report.json"),
        "max_rejected_records": 5,
    })
    messages = contacts_with_states(30, 10)
    env = {}
    wrapper = None
    if scenario == "retry":
        sim.script_faults([500, "drop", 503])  # 429 waits are covered with virtual time elsewhere
        sim.script_oauth_faults([503])
    elif scenario == "401":
        sim.revoke_token(TOKEN)
        sim.configure(tokens=set(), oauth_clients={CLIENT_ID: "other"})
    elif scenario == "403":
        sim.configure(token_scopes={TOKEN: []})
    elif scenario == "rejected":
        messages = [schema("contacts"), record("contacts", {"email": "not-an-email"}),
                    record("contacts", contact(1, num_orders="many")), state({"x": 1})]
    elif scenario == "debug":
        env["TARGET_HUBSPOT_UPSERT_LOG_LEVEL"] = "DEBUG"
        env["LOGLEVEL"] = "DEBUG"
    elif scenario == "crash":
        # A library error whose message embeds the request headers, as some HTTP stacks do.
        wrapper = tmp_path / "crash.py"
        wrapper.write_text(textwrap.dedent("""
            import sys, urllib3
            original = urllib3.PoolManager.request
            def request(self, method, url, **kwargs):
                if "batch/upsert" in url:
                    raise RuntimeError(f"transport failure, headers={kwargs.get('headers')}")
                return original(self, method, url, **kwargs)
            urllib3.PoolManager.request = request
            from target_hubspot_upsert.singer.cli import main
            sys.argv = ["target-hubspot-upsert", *sys.argv[1:]]
            main()
        """))
    if wrapper is None:
        run = run_cli(cfg, messages, tmp_path=tmp_path, env=env)
    else:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(cfg))
        from .helpers import Run, lines  # noqa: PLC0415
        proc = subprocess.run(
            [sys.executable, str(wrapper), "--config", str(config_path)],
            input=lines(messages), capture_output=True, text=True, timeout=120,
        )
        run = Run(stdout=proc.stdout, stderr=proc.stderr, returncode=proc.returncode)
        assert proc.returncode == 70 and "transport failure" in proc.stderr and "***" in proc.stderr
    output = all_output(run, tmp_path)
    assert output.strip(), "the scenario produced output to search"
    issued = [e.response_body.get("access_token") for e in sim.requests
              if e.path.startswith("/oauth") and isinstance(e.response_body, dict)]
    rotated = [e.response_body.get("refresh_token") for e in sim.requests
               if e.path.startswith("/oauth") and isinstance(e.response_body, dict)]
    for secret in [TOKEN, CLIENT_SECRET, REFRESH_TOKEN, *filter(None, issued), *filter(None, rotated)]:
        assert secret not in output, f"{scenario}: a secret leaked"


def test_about_never_shows_secret_values(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"access_token": TOKEN}))
    about = subprocess.run(
        [sys.executable, "-m", "target_hubspot_upsert", "--about", "--config", str(cfg), "--format=json"],
        capture_output=True, text=True, check=True,
    )
    assert TOKEN not in about.stdout + about.stderr
    settings = json.loads(about.stdout)["settings"]["properties"]
    assert all(settings[k].get("secret") for k in ("access_token", "client_secret", "refresh_token"))


# --- configuration errors -----------------------------------------------------------------

BASE = {"access_token": TOKEN}


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ({}, ["No credentials", "access_token", "client_id, client_secret and refresh_token"]),
        ({**BASE, "client_id": "x"}, ["either access_token or the OAuth settings", "not both"]),
        ({"client_id": "x", "client_secret": "y"}, ["also set refresh_token"]),
        ({**BASE, "api_base_url": "http://api.hubapi.com"}, ["api_base_url must be an https:// URL", "clear text"]),
        ({**BASE, "api_base_url": "http://10.0.0.5:8080"}, ["api_base_url must be an https:// URL"]),
        ({**BASE, "oauth_token_url": "ftp://x"}, ["oauth_token_url must be an https:// URL"]),
        ({**BASE, "batch_size_rows": 101}, ["batch_size_rows must be a whole number from 1 to 100"]),
        ({**BASE, "batch_size_rows": 0}, ["batch_size_rows must be a whole number from 1 to 100"]),
        ({**BASE, "api_version": "v4"}, ["api_version must be 'v3' or a dated version"]),
        ({**BASE, "object_mappings": {"people": {"object_type": "Contacts!"}}}, ["object_mappings['people'].object_type", "not a HubSpot object type"]),
        ({**BASE, "object_mappings": {"people": {"object_type": "contacts", "id_property": "hs_object_id"}}}, ["hs_object_id"]),
        ({**BASE, "object_mappings": {"people": {"objecttype": "contacts"}}}, ["unknown key(s) objecttype"]),
        ({**BASE, "object_mappings": {"people": "contacts"}}, ["object_mappings['people']: must be an object"]),
        ({**BASE, "unknown_properties": "drop"}, ["unknown_properties"]),
        ({**BASE, "max_concurrent_requests": "eight"}, ["max_concurrent_requests"]),
        ({**BASE, "max_concurrent_requests": 0}, ["max_concurrent_requests must be a whole number of at least 1"]),
        ({**BASE, "max_requests_per_10_seconds": 0}, ["max_requests_per_10_seconds must be a whole number of at least 1"]),
        ({**BASE, "max_retries": -3}, ["max_retries must be a whole number of at least 0"]),
        ({**BASE, "max_rejected_records": -5}, ["max_rejected_records must be a whole number of at least 0"]),
        ({**BASE, "request_timeout": -1}, ["request_timeout must be a number of seconds above 0"]),
        ({**BASE, "request_timeout": 0}, ["request_timeout must be a number of seconds above 0"]),
        ({**BASE, "property_group": " "}, ["property_group must not be empty"]),
        ({**BASE, "load_method": "overwrite"}, ["load_method 'overwrite'", "not supported"]),
        ({**BASE, "load_method": "merge"}, ["'merge' is not one of ['append-only', 'upsert', 'overwrite']"]),
        ({**BASE, "run_report_path": "/"}, ["run_report_path must name a file, not a directory"]),
        ({**BASE, "rejected_records_path": "/"}, ["rejected_records_path must name a file, not a directory"]),
    ],
)
def test_configuration_errors(config, fragments):
    with pytest.raises(HubSpotConfigError) as info:
        TargetHubSpotUpsert(config=config)
    message = "\n".join(info.value.errors)
    for fragment in fragments:
        assert fragment in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "config",
    [{"access_token": 987654321}, {"client_id": "c", "client_secret": ["TOPSECRETXYZ"], "refresh_token": "r" * 8}],
)
def test_secrets_of_the_wrong_type_are_not_echoed(config, tmp_path):
    run = run_cli(config, "", tmp_path=tmp_path)
    assert run.returncode == 1 and "is not of type 'string'" in run.stderr
    assert "987654321" not in run.stderr and "TOPSECRETXYZ" not in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "https://api.hubapi.com"])
def test_allowed_base_urls(url):
    TargetHubSpotUpsert(config={**BASE, "api_base_url": url})


def test_all_problems_reported_at_once_before_reading_input(tmp_path):
    cfg = {"access_token": TOKEN, "client_id": "x", "api_base_url": "http://example.com", "batch_size_rows": 1000}
    run = run_cli(cfg, "this is not even read\n", tmp_path=tmp_path)
    assert run.returncode == 1
    for fragment in ("not both", "https://", "batch_size_rows"):
        assert fragment in run.stderr
    assert "Traceback" not in run.stderr and "not valid JSON" not in run.stderr
    assert TOKEN not in run.stderr
