"""The assembled server over real loopback sockets, its config and its CLI."""

from __future__ import annotations

import base64

import httpx
import pytest
import trio

from server.calls.server import Running, serve_until_signalled
from server.cli import build_parser
from server.cli.serve import pipeline_options
from server.config import ENV_VARS, BasicAuth, ServerConfig, build_config, config_environment
from server.exceptions import ConfigError
from server.handlers.echo import EchoHandler
from server.handlers.pipeline import PipelineOptions
from server.telephony.caller import run_caller, speech_like_script


async def test_a_real_echo_call_over_loopback_with_auth_and_metrics() -> None:
    config = ServerConfig(port=0, control_port=0, echo=True,
                          basic_auth=BasicAuth("key", "token"))
    auth = [(b"Authorization", b"Basic " + base64.b64encode(b"key:token"))]
    script = speech_like_script(speech_s=0.8, silence_s=0.7, repeats=1)
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(serve_until_signalled, config, EchoHandler)
        url = f"ws://127.0.0.1:{running.calls.port}/media?sample-rate=8000&lead=7"
        with trio.fail_after(20):
            result = await run_caller(url, script, seconds=1.5, extra_headers=auth,
                                      tail_seconds=1.2)
        assert result.ok, result.error
        assert result.violations == {}
        assert result.marks_received == 1
        assert result.marks_echoed == 1
        assert 0.8 <= result.media_bytes / 16000 <= 1.4
        async with httpx.AsyncClient() as client:
            metrics = await client.get(f"http://127.0.0.1:{running.control_port}/metrics")
        nursery.cancel_scope.cancel()
    assert 'voicebot_calls_total{reason="stop"} 1.0' in metrics.text
    assert "voicebot_outbound_lateness_seconds_count" in metrics.text


def test_config_merges_defaults_environment_and_cli() -> None:
    env = {"WEBSOCKET_ENDPOINT_PATH": "/exotel", "MAX_CONCURRENT_CALLS": "40",
           "VOICEBOT_BASIC_AUTH": "k:t", "VOICEBOT_ECHO": "yes", "VOICEBOT_GRACE": "12.5",
           "OUR_BASE_URL": "https://k:t@bot.example", "VOICEBOT_CONTROL_AUTH": "ex:pw",
           "VOICEBOT_IDLE_TIMEOUT": "45"}
    config = build_config({"max_calls": 5, "port": None}, env)
    assert config.control_auth == BasicAuth("ex", "pw")
    assert config.idle_seconds == 45.0
    assert config.ws_path == "/exotel"
    assert config.max_calls == 5  # the flag wins
    assert config.port == 8080  # unset flag, unset variable: default
    assert config.basic_auth == BasicAuth("k", "t")
    assert config.echo is True
    assert config.grace == 12.5
    # Credentials never show in a repr (and so never in a log line).
    assert "k:t" not in repr(config)
    assert "pw" not in repr(config)
    assert "bot.example" not in repr(config)


@pytest.mark.parametrize(
    "env",
    [{"MAX_CONCURRENT_CALLS": "many"}, {"VOICEBOT_BASIC_AUTH": "nocolon"},
     {"WEBSOCKET_ENDPOINT_PATH": "media"}, {"VOICEBOT_FRAME_MS": "30"},
     {"OUR_BASE_URL": "ftp://x"}, {"VOICEBOT_ECHO": "perhaps"},
     # the WebSocket's credentials in /exotel/url's answer need the endpoint's own
     {"OUR_BASE_URL": "https://k:t@bot.example"}, {"VOICEBOT_CONTROL_AUTH": ":pw"},
     {"VOICEBOT_CONTROL_AUTH": "user:"}, {"VOICEBOT_BASIC_AUTH": "key:"},
     {"VOICEBOT_IDLE_TIMEOUT": "0"}, {"VOICEBOT_MAX_HANDSHAKES_PER_PEER": "-1"},
     {"VOICEBOT_WORKERS": "0"}, {"VOICEBOT_WORKERS": "257"}, {"VOICEBOT_WORKERS": "two"},
     # malformed base URLs: urlsplit's ValueError, a bad port, no host
     {"OUR_BASE_URL": "http://[x"}, {"OUR_BASE_URL": "https://bot.example:https"},
     {"OUR_BASE_URL": "https://"}],
)
def test_bad_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        build_config({}, env)


@pytest.mark.parametrize("url", ["http://[x", "https://k:s3cret@[::1:99999"])
def test_voicebot_serve_refuses_a_malformed_base_url_cleanly(
    monkeypatch: pytest.MonkeyPatch, url: str,
) -> None:
    """A clean one-line error and exit status 1, as for every config error (it
    was a ValueError traceback); the URL itself, credentials and all, is not shown."""
    from server.cli import main

    monkeypatch.setenv("OUR_BASE_URL", url)
    monkeypatch.setenv("VOICEBOT_CONTROL_AUTH", "c:p")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--echo", "--no-store"])
    message = str(exited.value.code)
    assert message.startswith("voicebot serve: OUR_BASE_URL is not a valid URL")
    assert "s3cret" not in message


def test_serve_help_documents_every_option_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for name, var in ENV_VARS.items():
        assert var in text
        assert "--" + name.replace("_", "-") in text


def test_serve_parses_flags_into_the_config() -> None:
    args = build_parser().parse_args(
        ["serve", "--port", "9000", "--echo", "--grace", "5", "--max-calls", "3"])
    config = build_config({name: getattr(args, name) for name in ENV_VARS}, {})
    assert (config.port, config.echo, config.grace, config.max_calls) == (9000, True, 5.0, 3)


def test_speed_switches_reach_the_pipeline_from_flags_and_environment() -> None:
    def options(argv: list[str], env: dict[str, str]) -> PipelineOptions:
        args = build_parser().parse_args(["serve", *argv])
        return pipeline_options(build_config({name: getattr(args, name) for name in ENV_VARS},
                                             env))

    on = options([], {})
    assert (on.preempt, on.adaptive_endpointing, on.vad_finalize, on.pause_finalize,
            on.audio_cache, on.first_clause_min_words) == (True, True, True, True, True, None)
    off = options(["--no-vad-finalize", "--no-audio-cache", "--first-clause-words", "4",
                   "--no-adaptive-endpointing"],
                  {"VOICEBOT_PREEMPT": "off", "VOICEBOT_PAUSE_FINALIZE": "off"})
    assert (off.preempt, off.adaptive_endpointing, off.vad_finalize, off.pause_finalize,
            off.audio_cache, off.first_clause_min_words) == (False, False, False, False,
                                                             False, 4)
    assert not options(["--no-pause-finalize"], {}).pause_finalize
    assert options(["--preempt"], {"VOICEBOT_PREEMPT": "off"}).preempt
    with pytest.raises(ConfigError):
        build_config({}, {"VOICEBOT_FIRST_CLAUSE_WORDS": "-1"})


def test_the_announce_time_greeting_is_on_by_default_and_off_by_flag_or_environment() -> None:
    def config(argv: list[str], env: dict[str, str]) -> ServerConfig:
        args = build_parser().parse_args(["serve", *argv])
        return build_config({name: getattr(args, name) for name in ENV_VARS}, env)

    assert config([], {}).renders_at_announce
    assert not config(["--no-announce-render"], {}).renders_at_announce
    assert not config([], {"VOICEBOT_ANNOUNCE_RENDER": "off"}).renders_at_announce
    assert config(["--announce-render"], {"VOICEBOT_ANNOUNCE_RENDER": "0"}).renders_at_announce
    # Nothing to render into, or nothing that greets: off whatever the flag says.
    assert not config(["--no-audio-cache"], {}).renders_at_announce
    assert not config(["--echo"], {}).renders_at_announce


def test_workers_come_from_the_flag_or_the_environment_and_default_to_one() -> None:
    def workers(argv: list[str], env: dict[str, str]) -> int:
        args = build_parser().parse_args(["serve", *argv])
        return build_config({name: getattr(args, name) for name in ENV_VARS}, env).workers

    assert workers([], {}) == 1
    assert workers([], {"VOICEBOT_WORKERS": "4"}) == 4
    assert workers(["--workers", "2"], {"VOICEBOT_WORKERS": "4"}) == 2  # the flag wins


def test_a_config_survives_the_trip_through_the_environment() -> None:
    """What ``--workers N`` hands its workers: every option, credentials and
    unset values included (an inherited variable must not come back)."""
    config = ServerConfig(
        host="0.0.0.0", port=9001, control_port=0, ws_path="/x", max_calls=7,
        basic_auth=BasicAuth("k", "t:with:colons"), control_auth=BasicAuth("c", "p"),
        our_base_url="https://k:t@bot.example", echo=True, grace=2.5, log_json=True,
        store=False, idle_seconds=12.25, stt="local", playbook="/p.toml", workers=3)
    env = {"VOICEBOT_TTS": "elevenlabs", "UNRELATED": "1"}  # inherited
    for var, text in config_environment(config).items():
        if text is None:
            env.pop(var, None)
        else:
            env[var] = text
    assert build_config({}, env) == config
    assert build_config({}, {k: v for k, v in config_environment(ServerConfig()).items()
                             if v is not None}) == ServerConfig()


def test_serve_raises_the_soft_descriptor_limit_to_the_hard_one() -> None:
    import resource

    from server.cli.serve import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(256, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        now = raise_fd_limit()
        assert now == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now > lowered or hard == lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
