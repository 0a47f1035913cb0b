"""The chat engine (--engine chat) against a local fake chat endpoint (fake_chat_server):
how it continues a partial solution, its retries on every fault the fake injects, the cap on
requests in flight, cost against the usage the fake reported, --max-cost, the refusal of
value modes without log-probs, and the API key never leaving the engine."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_chat_server import FakeChatServer

import cotgen.engines.chat as chat
from cotgen.engines import GenerationParams, build_engine
from cotgen.engines.chat import decode_prompt, encode_messages
from cotgen.engines.config import EngineConfig
from cotgen.errors import DataError, EngineFailed, RunError, UsageError
from cotgen.io.trees import iter_input_trees
from cotgen.io.writers import read_manifest

KEY = "sk-cotgen-test-7f3a9c1e5b2d4608aa11"  # distinctive: grepped for in every output
SYSTEM = {"role": "system", "content": "You solve maths problems."}
USER = {"role": "user", "content": "What is 2 + 2?"}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(chat, "RETRY_BACKOFF_S", 0.01)
    monkeypatch.setenv("COTGEN_API_KEY", KEY)


@pytest.fixture
def fake():
    servers = []

    def start(**kw) -> FakeChatServer:
        servers.append(FakeChatServer(**kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def engine_on(server: FakeChatServer, **kw) -> chat.ChatEngine:
    return build_engine(EngineConfig(engine="chat", model="m", base_url=server.url, **kw))


def run(coro):
    return asyncio.run(coro)


# --- prompts as messages ---------------------------------------------------------------


def test_prompt_round_trip_keeps_messages_and_the_partial_answer():
    text = encode_messages([SYSTEM, USER]) + "Step 1: 2 + 2 = 4.\n\n"
    assert decode_prompt(text) == ([SYSTEM, USER], "Step 1: 2 + 2 = 4.\n\n")
    nul = {"role": "user", "content": "odd \x00 byte"}
    assert decode_prompt(encode_messages([nul])) == ([nul], "")
    # add_generation_prompt=False: the last assistant message is the partial answer
    assert decode_prompt(encode_messages([USER, {"role": "assistant", "content": "So"}]) + " far") == ([USER], "So far")
    assert decode_prompt("plain text") == ([{"role": "user", "content": "plain text"}], "")


# --- continuing a partial solution --------------------------------------------------------


@pytest.mark.parametrize("dialect, mode", [("vllm", "prefill"), ("deepseek", "prefix"), ("strict", "restate")])
def test_probe_finds_how_the_endpoint_continues(fake, dialect, mode):
    server = fake(dialect=dialect)
    eng = engine_on(server)
    assert eng.continuation == mode
    prompt = eng.render_chat([SYSTEM, USER]) + "Step 1.\n\n"
    [[c]] = run(eng.generate([prompt], GenerationParams(max_tokens=40, temperature=0.7)))
    assert c.text
    body = server.requests[-1]["body"]
    last = body["messages"][-1]
    if mode == "prefill":
        assert last == {"role": "assistant", "content": "Step 1.\n\n"}
        assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    elif mode == "prefix":
        assert last == {"role": "assistant", "content": "Step 1.\n\n", "prefix": True}
    else:
        assert body["messages"][-2] == {"role": "assistant", "content": "Step 1."}
        assert last["role"] == "user" and "Continue" in last["content"]


def test_restated_steps_echoed_back_are_dropped(fake, monkeypatch):
    import fake_chat_server

    server = fake(dialect="strict")
    eng = engine_on(server)
    monkeypatch.setattr(fake_chat_server, "answer_for", lambda messages: "Step 1.\n\nStep 2. \\boxed{4}")
    [[c]] = run(eng.generate([eng.render_chat([USER]) + "Step 1.\n\n"], GenerationParams(max_tokens=40)))
    assert c.text == "Step 2. \\boxed{4}"


def test_forced_continuation_is_not_probed(fake):
    server = fake(dialect="vllm")
    eng = engine_on(server, continuation="restate")
    assert eng.continuation == "restate" and len(server.requests) == 2  # the key, log-probs and n only


def test_a_fresh_prompt_is_sent_as_its_messages(fake):
    server = fake()
    eng = engine_on(server)
    run(eng.generate([eng.render_chat([SYSTEM, USER])], GenerationParams(max_tokens=8, temperature=0)))
    body = server.requests[-1]["body"]
    assert body["messages"] == [SYSTEM, USER] and "continue_final_message" not in body


# --- sampling, tokens, log-probs ------------------------------------------------------------


def test_n_samples_share_the_reported_tokens(fake):
    server = fake()
    eng = engine_on(server)
    before = (server.prompt_tokens, server.completion_tokens)
    [row] = run(eng.generate([eng.render_chat([USER])], GenerationParams(n=3, max_tokens=40, temperature=1.0)))
    assert len(row) == 3
    assert sum(c.tokens for c in row) == server.completion_tokens - before[1]
    assert sum(c.prompt_tokens for c in row) == server.prompt_tokens - before[0]  # billed once per request
    assert all(len(c.top_logprobs[0]) == 5 for c in row)


def test_an_endpoint_without_n_gets_one_request_a_sample(fake):
    server = fake(several=False, dialect="strict", logprobs=False)
    eng = engine_on(server)
    assert not eng.several and not eng.logprobs
    sent = len(server.requests)
    [row] = run(eng.generate(["hi"], GenerationParams(n=3, max_tokens=40, temperature=1.0)))
    assert len(row) == 3 and len(server.requests) == sent + 3
    assert all(r["body"]["n"] == 1 for r in server.requests[sent:])


def test_greedy_n_is_one_request(fake):
    server = fake()
    eng = engine_on(server)
    sent = len(server.requests)
    [row] = run(eng.generate(["hi"], GenerationParams(n=4, max_tokens=40, temperature=0)))
    assert len(row) == 4 and len({c.text for c in row}) == 1
    assert len(server.requests) == sent + 1 and server.requests[-1]["body"]["n"] == 1


def test_judge_scores_from_top_logprobs(fake):
    eng = engine_on(fake())
    [row] = run(eng.score([eng.render_chat([USER])], ["Yes", "No", "Maybe"]))
    assert row == {"Yes": -0.2, "No": -1.8, "Maybe": float("-inf")}


# --- robustness --------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "truncated", "drop", "trickle"])
def test_each_fault_is_retried(fake, fault):
    server = fake(slow_s=2.5)  # timeouts well apart from a busy machine's slow answers
    eng = engine_on(server, request_timeout_s=1.5)
    server.faults = [fault]
    t0 = time.monotonic()
    [[c]] = run(eng.generate(["hi"], GenerationParams(max_tokens=40, temperature=0.7)))
    assert "boxed" in c.text and eng.usage.retries == 1
    assert [r["fault"] for r in server.requests[-2:]] == [fault, None]
    if fault == "429":
        assert time.monotonic() - t0 >= 1.0  # Retry-After: 1 honoured


def test_a_request_failing_every_try_fails_alone(fake):
    server = fake()
    eng = engine_on(server)
    server.faults = ["500"] * chat.ATTEMPTS
    with pytest.raises(RunError) as info:
        run(eng.generate(["hi"], GenerationParams(max_tokens=8)))
    assert not isinstance(info.value, EngineFailed) and "HTTP 500" in str(info.value)
    [[c]] = run(eng.generate(["hi"], GenerationParams(max_tokens=40)))  # the next request is served
    assert c.text


def test_many_failed_requests_in_a_row_mean_the_endpoint_is_gone(fake, monkeypatch):
    monkeypatch.setattr(chat, "ATTEMPTS", 1)
    server = fake()
    eng = engine_on(server)
    server.faults = ["500"] * chat.GONE_AFTER
    for _ in range(chat.GONE_AFTER - 1):
        with pytest.raises(RunError):
            run(eng.generate(["hi"], GenerationParams(max_tokens=8)))
    with pytest.raises(EngineFailed, match="in a row"):
        run(eng.generate(["hi"], GenerationParams(max_tokens=8)))


def test_connection_refused_is_the_endpoint_gone(fake):
    server = fake()
    eng = engine_on(server)
    server.close()
    with pytest.raises(EngineFailed, match="gone"):
        run(eng.generate(["hi"], GenerationParams(max_tokens=8)))


def test_a_refused_request_fails_alone_and_never_shows_the_key(fake):
    server = fake()
    eng = engine_on(server)
    server.faults = ["echo400"]
    with pytest.raises(DataError) as info:
        run(eng.generate(["hi"], GenerationParams(max_tokens=8)))
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in str(info.value) and "Bearer ***" in str(info.value)


def test_a_refused_key_stops_at_start_naming_the_variable(fake, monkeypatch):
    server = fake()
    monkeypatch.setattr(server, "handle", lambda h, body, fault: server.send(h, 401, b'{"error": "bad key"}'))
    with pytest.raises(EngineFailed) as info:
        engine_on(server)
    assert "$COTGEN_API_KEY" in str(info.value) and KEY not in str(info.value)


def test_no_key_refused_says_none_was_set(fake, monkeypatch):
    monkeypatch.delenv("COTGEN_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = fake()
    monkeypatch.setattr(server, "handle", lambda h, body, fault: server.send(h, 401, b'{"error": "no key"}'))
    with pytest.raises(EngineFailed, match=r"without a key \(\$COTGEN_API_KEY or \$OPENAI_API_KEY unset\)"):
        engine_on(server)
    assert "Authorization" not in server.requests[-1]["headers"]


def test_api_key_env_names_the_variable(fake, monkeypatch):
    server = fake()
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-other-key-99")
    engine_on(server, api_key_env="MY_PROVIDER_KEY")
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-other-key-99"
    with pytest.raises(Exception, match="MY_UNSET_KEY"):
        engine_on(server, api_key_env="MY_UNSET_KEY")


def test_requests_in_flight_are_capped(fake):
    server = fake(delay_s=0.2)
    eng = engine_on(server, max_requests=2)
    server.max_in_flight = 0
    run(eng.generate(["a", "b", "c", "d", "e", "f"], GenerationParams(max_tokens=8)))
    assert server.max_in_flight == 2


def test_cost_and_max_cost(fake):
    server = fake()
    eng = engine_on(server, price_in=2.0, price_out=8.0, max_cost=1.0)
    run(eng.generate(["hi"], GenerationParams(max_tokens=40)))
    expected = (server.prompt_tokens * 2.0 + server.completion_tokens * 8.0) / 1e6
    assert eng.api_usage()["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert eng.usage.prompt_tokens == server.prompt_tokens
    eng.cfg = EngineConfig(engine="chat", model="m", base_url=server.url, price_in=2.0, price_out=8.0, max_cost=expected)
    sent = len(server.requests)
    with pytest.raises(chat.BudgetSpent, match="--max-cost"):
        run(eng.generate(["hi"], GenerationParams(max_tokens=40)))
    assert len(server.requests) == sent  # nothing more is sent once the budget is spent


# --- synthesize through the fake ---------------------------------------------------------------


# The run shares this process with the fake: on a busy machine its event loop can stall for
# seconds, and an answer that came in time would read as timed out (and be billed by the
# fake but not counted by the engine). The fake's "timeout" faults last until the client
# hangs up, so this only sets how long each of them takes.
REQUEST_TIMEOUT_S = 8


def synth(cli, server, out, *extra):
    return cli("synthesize", "--engine", "chat", "--model", "fake-model", "--base-url", server.url,
               "--problems", "builtin:arith", "--limit", "6", "--simulations", "3", "--samples", "2",
               "--concurrency", "3", "--out", out, "--request-timeout", REQUEST_TIMEOUT_S, *extra)


def test_synthesize_through_faults_saves_every_tree_and_counts_cost(cli, fake, tmp_path):
    server = fake(slow_s=60)  # a "timeout" answers only once the client has given up
    faults = ["429", "500", "timeout", "truncated", "drop", None, None]
    server.faults = [None] * 4 + ["echo400"] + faults * 3  # after the probe, faults all through the run
    out = tmp_path / "run"
    r = synth(cli, server, out, "--price-in", "0.27", "--price-out", "1.10", "--json")
    assert r.code == 0, r.err
    assert "Traceback" not in r.err + r.out
    report = json.loads(r.out)
    assert report["trees"] == 6
    manifest = read_manifest(out)
    expected = round((server.prompt_tokens * 0.27 + server.completion_tokens * 1.10) / 1e6, 6)
    assert report["cost_usd"] == pytest.approx(expected, abs=2e-6)
    assert report["api"]["prompt_tokens"] == server.prompt_tokens
    assert report["api"]["completion_tokens"] == server.completion_tokens
    assert report["api"]["continuation"] == "prefill" and report["api"]["retries"] > 0
    assert manifest["last_run"]["cost_usd"] == report["cost_usd"]
    # Per tree: its requests' reported tokens (the probe's requests of one token belong to no tree).
    trees = list(iter_input_trees(sorted((out / "trees").glob("*.parquet"))))
    searched = [(p, c) for body, p, c in server.billed if body.get("max_tokens") != 1]
    assert sum(t.stats.prompt_tokens for t in trees) == sum(p for p, _ in searched)
    assert sum(t.stats.generated_tokens for t in trees) == sum(c for _, c in searched)
    assert manifest["settings"]["engine"]["price_in"] == 0.27
    errors = [e for e in _tree_errors(out) if e]
    assert report["failed"] == len(errors) == 1  # the tree whose request was refused, saying why
    assert "HTTP 400" in errors[0] and "Bearer ***" in errors[0]
    assert any(r["fault"] == "echo400" for r in server.requests)
    _assert_no_key(r, tmp_path)


def test_max_cost_stops_the_run_like_ctrl_c(cli, fake, tmp_path):
    server = fake()
    out = tmp_path / "run"
    r = synth(cli, server, out, "--price-in", "1000", "--price-out", "1000", "--max-cost", "0.5",
              "--concurrency", "1")
    assert r.code == 3, r.err
    assert "--max-cost 0.5 USD reached" in r.err and "finished tree(s) are saved" in r.err
    assert "Traceback" not in r.err
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    # What the stopped run spent is recorded, as a finished run's last_run records it.
    spent = manifest["last_run"]
    assert spent["cost_usd"] >= 0.5 and spent["cost_usd"] == spent["api"]["cost_usd"]
    _assert_no_key(r, tmp_path)


def test_the_endpoint_going_away_stops_the_run_with_finished_trees_saved(cli, fake, tmp_path):
    server = fake(delay_s=0.05)
    server.faults = [None] * 14 + ["gone"]  # the probe, then about half the run
    out = tmp_path / "run"
    r = synth(cli, server, out, "--concurrency", "1")
    assert r.code == 1, r.err
    assert "is gone" in r.err and "finished tree(s) are saved" in r.err and "Traceback" not in r.err
    manifest = read_manifest(out)
    assert manifest["status"] == "interrupted"
    assert 0 < len(_tree_errors(out)) < 6 and not any(_tree_errors(out))  # none in flight recorded as failed


@pytest.mark.slow  # a real process, really signalled
def test_ctrl_c_saves_the_finished_trees_and_never_shows_the_key(fake, tmp_path):
    server = fake(delay_s=0.1)
    out = tmp_path / "run"
    env = {**os.environ, "COTGEN_API_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cotgen.cli.main", "synthesize", "--engine", "chat", "--model", "m",
         "--base-url", server.url, "--problems", "builtin:arith", "--limit", "40", "--simulations", "3",
         "--concurrency", "2", "--shard-trees", "1", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    deadline = time.monotonic() + 120
    while not list((out / "trees").glob("*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "finished tree(s) are saved" in stderr
    assert read_manifest(out)["status"] == "interrupted"
    assert 0 < len(_tree_errors(out)) < 40
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in stdout + stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_value_modes_without_logprobs_are_refused(cli, fake, tmp_path):
    server = fake(dialect="strict", logprobs=False)
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"question": "What is 2 + 2?"}\n')
    r = cli("synthesize", "--engine", "chat", "--model", "m", "--base-url", server.url, "--problems", problems,
            "--out", tmp_path / "run", "--value", "judge")
    assert r.code == 2 and "needs log-probs" in r.err and "Traceback" not in r.err
    # with the gold, no log-probs are needed
    problems.write_text('{"question": "What is 2 + 2?", "answer": "4"}\n')
    r = cli("synthesize", "--engine", "chat", "--model", "m", "--base-url", server.url, "--problems", problems,
            "--out", tmp_path / "run2", "--simulations", "2", "--samples", "2")
    assert r.code == 0, r.err


@pytest.mark.parametrize("value", ["judge", "confidence"])
def test_gold_hidden_runs_value_answers_with_the_endpoints_logprobs(cli, fake, tmp_path, value):
    server = fake()
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"question": "What is 2 + 2?"}\n{"question": "What is 3 + 5?"}\n')
    out = tmp_path / "run"
    r = cli("synthesize", "--engine", "chat", "--model", "m", "--base-url", server.url, "--problems", problems,
            "--out", out, "--value", value, "--simulations", "3", "--samples", "2", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["failed"] == 0
    trees = list(iter_input_trees(sorted((out / "trees").glob("*.parquet"))))
    estimates = [n.q_estimate for t in trees for n in t.nodes if n.terminal]
    assert estimates and all(e is not None for e in estimates)
    if value == "judge":  # P(Yes) from the fake's top log-probs: Yes -0.2, yes -3.0, No -1.8, no -4.0
        import math

        yes, no = math.exp(-0.2) + math.exp(-3.0), math.exp(-1.8) + math.exp(-4.0)
        assert all(e == pytest.approx(yes / (yes + no), abs=1e-6) for e in estimates)
        assert any(r["body"].get("top_logprobs") == chat.SCORE_TOP for r in server.requests)


def test_chat_with_ray_is_refused(cli, tmp_path):
    r = cli("synthesize", "--engine", "chat", "--problems", "builtin:arith", "--out", tmp_path / "x",
            "--executor", "ray")
    assert r.code == 2 and "--executor local" in r.err
    assert not (tmp_path / "x").exists()  # refused before the folder is made


def test_chat_with_ray_is_refused_through_the_library_too(tmp_path):
    from cotgen.executors.ray_cluster import RayConfig
    from cotgen.search.config import SearchConfig
    from cotgen.synthesize import RunConfig
    from cotgen.synthesize import run as synthesize_run

    cfg = EngineConfig(engine="chat", model="m", base_url="http://127.0.0.1:9/v1", price_in=1.0, price_out=1.0,
                       max_cost=5.0)
    with pytest.raises(UsageError, match="--executor local"):
        synthesize_run(RunConfig(problems="builtin:arith", out=tmp_path / "x", limit=2), SearchConfig(), cfg,
                       ray=RayConfig(workers=2))
    assert not (tmp_path / "x").exists()


def _tree_errors(out: Path) -> list[str | None]:
    return [tree.error for tree in iter_input_trees(sorted((out / "trees").glob("*.parquet")))]


def _assert_no_key(result, root: Path) -> None:
    """The key is in no output and no file the run wrote."""
    assert KEY not in result.out and KEY not in result.err
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_the_dataset_card_publishes_the_api_cost():
    from cotgen.hub import published_settings

    api = {"prompt_tokens": 659, "completion_tokens": 80, "cost_usd": 0.000266, "continuation": "prefill",
           "requests": 14, "price_in": 0.27, "price_out": 1.1}
    manifest = {"settings": {"model": "m", "engine": {"base_url": "http://internal:8000/v1"}},
                "last_run": {"api": api, "cost_usd": 0.000266}}
    assert published_settings(manifest)["api_usage"] == {
        "prompt_tokens": 659, "completion_tokens": 80, "cost_usd": 0.000266, "continuation": "prefill"}
    assert "api_usage" not in published_settings({"settings": {"model": "m"}, "last_run": {"trees": 3}})


def test_sampling_settings_come_as_generation_params(fake):
    eng = engine_on(fake())
    with pytest.raises(TypeError, match="GenerationParams"):
        run(eng.generate(["hi"], {"max_tokens": 8}))


def test_prm_values_need_no_logprobs_from_the_policy(fake):
    eng = engine_on(fake(dialect="strict", logprobs=False))
    assert not eng.logprobs
    chat.refuse_value_without_logprobs(eng, "prm", no_answer=3)  # the PRM reads text, not log-probs
    with pytest.raises(UsageError, match="needs log-probs"):
        chat.refuse_value_without_logprobs(eng, "judge", no_answer=3)


# --- review fixes: key hygiene, prices, greedy copies, malformed choices -------------------


def test_a_key_with_a_line_break_is_refused_by_its_variable_name_only(fake, monkeypatch):
    server = fake()
    monkeypatch.setenv("COTGEN_API_KEY", KEY + "\r\nsecond line")  # http.client would print it whole
    with pytest.raises(UsageError) as info:
        engine_on(server)
    assert "$COTGEN_API_KEY" in str(info.value) and KEY not in str(info.value)
    assert not server.requests  # refused before any request
    monkeypatch.setenv("COTGEN_API_KEY", f"  {KEY}\r\n")  # Windows line ending, spaces: trimmed
    engine_on(server)
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_an_echoed_key_across_the_detail_cut_leaves_no_part_of_it(fake, monkeypatch):
    server = fake()
    eng = engine_on(server)

    def echo_late(h, body, fault):  # the key starts just before the 500 characters kept
        text = "x" * 470 + " " + h.headers.get("Authorization")
        server.send(h, 400, json.dumps({"error": text}).encode())

    monkeypatch.setattr(server, "handle", echo_late)
    with pytest.raises(DataError) as info:
        run(eng.generate(["hi"], GenerationParams(max_tokens=8)))
    assert KEY[:8] not in str(info.value) and "Bearer ***" in str(info.value)


def test_max_cost_needs_both_prices():
    with pytest.raises(ValueError, match="both prices"):
        EngineConfig(engine="chat", model="m", base_url="http://127.0.0.1:1/v1", price_in=0.15, max_cost=5.0)


def test_greedy_copies_carry_their_tokens_once(fake):
    server = fake()
    eng = engine_on(server)
    [row] = run(eng.generate(["hi"], GenerationParams(n=3, max_tokens=16, temperature=0)))
    assert len(row) == 3 and len({c.text for c in row}) == 1
    billed = server.billed[-1]
    assert sum(c.tokens for c in row) == billed[2] and sum(c.prompt_tokens for c in row) == billed[1]


def test_a_malformed_choice_is_retried_not_a_crash(fake, monkeypatch):
    server = fake()
    eng = engine_on(server)
    calls = []
    real = server.handle

    def null_choice_once(h, body, fault):
        calls.append(1)
        if len(calls) == 1:
            return server.send(h, 200, json.dumps({"choices": [None]}).encode())
        return real(h, body, fault)

    monkeypatch.setattr(server, "handle", null_choice_once)
    [[c]] = run(eng.generate(["hi"], GenerationParams(max_tokens=8)))
    assert c.text and len(calls) == 2
