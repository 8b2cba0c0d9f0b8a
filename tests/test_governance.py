"""Governance: PII never reaches the store, exports, reports or uploads; sampling; size limits;
retention."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING

import pytest
from fake_langfuse import FakeLangfuse, contracts_dir
from git_repo import git

if TYPE_CHECKING:
    from conftest import Runs

PII = {
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ipv4": "203.0.113.77",
    "ipv6": "2001:db8::8a2e:370:7334",
    "openai_key": "sk-proj-Zx81mQ2vLp0aNw7yTqR4",
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.payload",
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "password": "hunter2-secret-pw",
}
NEEDLES = [v.encode() for v in PII.values()] + [b"hunter2", b"jane.doe", b"4111 1111"]

SUITE = """
import pytest
from pytest_llmobs import observe, start_span

@observe
def lookup(customer: str) -> dict:
    return {{"customer": customer, "note": "call {phone} or mail {email}"}}

@pytest.mark.llm_dataset("support")
def test_support(item, llm, prompt, scorer):
    system = prompt("agent").compile(customer_email="{email}", card="{card}")
    with start_span("answer", metadata={{"client_ip": "{ipv4}", "key": "{openai_key}"}}) as span:
        reply = llm.generate(system.text + " " + item.input)
        span.update(output=reply.text + " via {ipv6}")
    lookup(item.metadata["who"])
    scorer.score("leaky", "password={password}")
    assert "never" not in item.input, "failed for {email} with {bearer} and {aws_key}"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    items = [
        {
            "id": "a",
            "input": f"My card is {PII['card']} and IBAN {PII['iban']}",
            "expected_output": f"write to {PII['email']}",
            "metadata": {"who": PII["email"]},
        },
        {
            "id": "b",
            "input": f"never share {PII['phone']}, token {PII['openai_key']}",
            "metadata": {"who": PII["ipv4"]},
        },
    ]
    pytester.makefile(".jsonl", **{"datasets/support": "\n".join(json.dumps(i) for i in items)})
    prompt = {  # the template and its config hold PII too: stored and uploaded masked
        "type": "text",
        "prompt": "Help {{customer_email}} with card {{card}}; escalate to " + PII["phone"],
        "config": {"owner": PII["email"]},
    }
    pytester.makefile(".json", **{"prompts/agent": json.dumps(prompt)})
    pytester.makepyfile(test_suite=SUITE.format(**PII))
    return pytester


def leaks(data: bytes) -> list[bytes]:
    return [needle for needle in NEEDLES if needle in data]


def test_no_pii_in_store_wal_export_report_or_upload(
    suite: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database file and its WAL (when one is left on disk) are both searched.
    result = suite.runpytest("--llm-report=report.html", "--llm-json=run.json")
    result.assert_outcomes(passed=1, failed=1)
    store_dir = suite.path / ".llmobs"
    files = [p for p in store_dir.iterdir() if p.name.startswith("llmobs.db")]
    assert files
    for path in [*files, suite.path / "report.html", suite.path / "run.json"]:
        assert leaks(path.read_bytes()) == [], path.name
    item = runs.latest()["items"][0]
    assert "<CARD>" in json.dumps(item) and "<IBAN>" in json.dumps(item)
    failed = next(i for i in runs.latest()["items"] if i["outcome"] == "failed")
    assert "<SECRET>" in failed["error"] and "<EMAIL>" in failed["error"]

    spec = contracts_dir()
    with FakeLangfuse(spec_dir=spec) as server:
        for key, value in {**server.env(), "LLMOBS_UPLOAD_MAX_ATTEMPTS": "2"}.items():
            monkeypatch.setenv(key, value)
        done = subprocess.run(
            [sys.executable, "-m", "pytest_llmobs.cli", "upload", "latest", "--to", "langfuse"],
            cwd=suite.path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        bodies = b"".join(server.bodies)
    assert len(bodies) > 1000
    assert leaks(bodies) == []


def test_the_test_code_sees_unmasked_values(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        test_raw=dedent(
            f"""\
            def test_raw(scorer):
                email = "{PII["email"]}"
                scorer.score("who", email)
                assert email == "{PII["email"]}"
            """
        )
    )
    pytester.runpytest().assert_outcomes(passed=1)
    score = runs.latest()["items"][0]["trace"]["scores"][0]
    assert score["value"] == "<EMAIL>"


def test_redact_off_keeps_values_and_strict_masks_more(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_raw=dedent(
            """\
            def test_raw(scorer):
                scorer.score("who", "order 12345678 from jane@example.com")
            """
        )
    )
    pytester.runpytest("--llm-redact=off").assert_outcomes(passed=1)
    assert runs.latest()["items"][0]["trace"]["scores"][0]["value"] == (
        "order 12345678 from jane@example.com"
    )
    pytester.runpytest("--llm-redact=Strict").assert_outcomes(passed=1)  # any case, as --llm-cache
    assert runs.latest()["items"][0]["trace"]["scores"][0]["value"] == (
        "order <NUMBER> from <EMAIL>"
    )


def llmobs_cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmobs.cli", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )


def test_strict_masking_keeps_identifiers_so_a_default_run_compares_clean(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    from pytest_llmobs.dataset_files import load_dataset
    from pytest_llmobs.redaction import Redactor

    # Every identifier below holds what strict masking takes for a number or a token: the
    # dataset name, its version, the gates' limits, the git commit, the cache key.
    strict = Redactor("strict")
    for n in range(1000):  # a dataset whose version strict masking would take for a number
        lines = [json.dumps({"id": "a", "input": f"question {n}", "expected_output": "ok"})]
        pytester.makefile(".jsonl", **{"datasets/orders-20261128": "\n".join(lines)})
        version = load_dataset("orders-20261128", pytester.path / "datasets").version
        if strict.text(version) != version:
            break
    pytester.makeini("[pytest]\nllm_threshold = orders-20261128: pass_rate >= 0.5\n")
    pytester.makepyfile(
        test_qa=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("orders-20261128", thresholds=["p95_latency_ms <= 1000000"])
            def test_qa(item, llm):
                llm.generate(item.input)
            """
        )
    )
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", ".")
    git(pytester.path, "commit", "-q", "-m", "suite")
    commit = git(pytester.path, "rev-parse", "HEAD")

    strict_result = pytester.runpytest("--llm-redact=strict", "--llm-cache=write")
    strict_result.assert_outcomes(passed=1)
    assert strict_result.ret == pytest.ExitCode.OK  # both gates found their dataset and passed
    strict_run = runs.latest()
    pytester.runpytest("--llm-cache=read").assert_outcomes(passed=1)
    default_run = runs.latest()

    (item,) = strict_run["items"]
    assert strict_run["datasets"] == item["datasets"] == {"orders-20261128": version}
    assert item["dataset"] == "orders-20261128"
    assert item["thresholds"] == ["p95_latency_ms <= 1000000"]
    assert [t["expression"] for t in strict_run["thresholds"]] == [
        "orders-20261128: pass_rate >= 0.5",
        "p95_latency_ms <= 1000000",
    ]
    assert strict_run["environment"]["git_commit"] == commit
    (generation,) = [o for o in item["trace"]["observations"] if o["type"] == "generation"]
    cache_key = generation["metadata"]["cache_key"]
    assert len(cache_key) == 64 and strict.text(cache_key) != cache_key  # kept, though token-like
    assert strict.text(item["trace"]["id"]) != item["trace"]["id"]  # kept, though token-like

    compared = llmobs_cli(
        pytester.path, "compare", "--format", "json", default_run["id"], strict_run["id"]
    )
    assert compared.returncode == 0, compared.stderr
    comparison = json.loads(compared.stdout)
    assert comparison["changes"] == []  # no false "what changed: dataset ..."
    assert comparison["matched"] == 1
    assert comparison["unmatched"] == {"only_in_baseline": [], "only_in_current": []}
    rescored = llmobs_cli(pytester.path, "rescore", strict_run["id"])
    assert rescored.returncode == 0, rescored.stdout + rescored.stderr
    assert "all 2 threshold(s) passed" in rescored.stdout


def test_identifier_named_keys_in_user_data_are_masked(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # Keys are identifiers only where the plugin writes them, not in inputs or user metadata.
    email, card = PII["email"], PII["card"]
    lines = [
        json.dumps({"id": "a", "input": {"name": email, "id": card}, "metadata": {"model": email}})
    ]
    pytester.makefile(".jsonl", **{"datasets/people": "\n".join(lines)})
    pytester.makepyfile(
        test_people=dedent(
            f"""\
            import pytest
            from pytest_llmobs import start_span

            @pytest.mark.llm_dataset("people")
            def test_people(item):
                metadata = {{"model": "{email}", "nested": {{"cache_key": "{email}"}}}}
                with start_span("lookup", metadata=metadata) as span:
                    span.update(output={{"name": "{email}", "status": "{card}"}})
            """
        )
    )
    pytester.runpytest().assert_outcomes(passed=1)

    run = runs.latest()
    (item,) = run["items"]
    assert item["input"] == {"name": "<EMAIL>", "id": "<CARD>"}
    lookup = next(o for o in item["trace"]["observations"] if o["name"] == "lookup")
    assert lookup["metadata"] == {"model": "<EMAIL>", "nested": {"cache_key": "<EMAIL>"}}
    assert lookup["output"] == {"name": "<EMAIL>", "status": "<CARD>"}
    with runs.open() as store:
        (snapshot,) = store.get_dataset("people", run["datasets"]["people"]) or []
    assert snapshot["input"] == {"name": "<EMAIL>", "id": "<CARD>"}
    assert snapshot["metadata"] == {"model": "<EMAIL>"}


def test_metadata_and_prompt_config_are_the_users_data_whatever_their_keys(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: metadata keys the plugin writes somewhere, and a prompt config's "model" and
    # "name", were kept unmasked in any metadata and config)
    email = PII["email"]
    pytester.makefile(
        ".jsonl",
        **{
            "datasets/tickets": json.dumps(
                {
                    "id": "t1",
                    "input": "Reset my account",
                    "metadata": {"item_id": email, "outcome": f"refund to {PII['phone']}"},
                }
            )
        },
    )
    config = {"model": PII["openai_key"], "name": email, "temperature": 0.2}
    pytester.makefile(
        ".json", **{"prompts/p": json.dumps({"type": "text", "prompt": "Hi", "config": config})}
    )
    pytester.makepyfile(
        test_m=dedent(
            f"""\
            import pytest
            from pytest_llmobs import start_span

            @pytest.mark.llm_dataset("tickets")
            def test_ticket(item, llm, prompt):
                llm.generate(prompt("p").compile())
                with start_span("lookup") as span:
                    span.update(metadata={{"dataset": "{email}", "item_id": "{email}",
                        "outcome": "card {PII["card"]}", "finish_reason": "to {email}"}})
            """
        )
    )
    pytester.runpytest("--llm-redact=strict").assert_outcomes(passed=1)

    run = runs.latest()
    (item,) = run["items"]
    root, generation, lookup = item["trace"]["observations"]
    assert lookup["metadata"] == {
        "dataset": "<EMAIL>",
        "item_id": "<EMAIL>",
        "outcome": "card <CARD>",
        "finish_reason": "to <EMAIL>",
    }
    assert {k: root["metadata"][k] for k in ("dataset", "item_id", "outcome")} == {
        "dataset": "tickets",
        "item_id": "t1",
        "outcome": "passed",
    }
    assert generation["type"] == "generation"
    with runs.open() as store:
        (snapshot,) = store.get_dataset("tickets", run["datasets"]["tickets"]) or []
        prompt = store.get_prompt("p", version=1) or {}
    assert snapshot["metadata"] == {"item_id": "<EMAIL>", "outcome": "refund to <PHONE>"}
    assert prompt["config"] == {"model": "<SECRET>", "name": "<EMAIL>", "temperature": 0.2}


def test_long_test_and_item_ids_are_kept_whole_so_each_stays_apart(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: cut at --llm-max-field-chars, two tests became one, "2 collected items missing")
    stem = "customer-complaint-about-late-delivery-of-order-and-request-for-refund-with-escalation"
    lines = [json.dumps({"id": f"{stem}-item-{v}", "input": v}) for v in "ab"]
    pytester.makefile(".jsonl", **{"datasets/long": "\n".join(lines)})
    pytester.makepyfile(
        test_l=dedent(
            f"""\
            import pytest

            CASES = [pytest.param(v, id="{stem}-variant-" + v) for v in "ab"]

            @pytest.mark.parametrize("case", CASES)
            def test_summary(case, scorer):
                scorer.score("ok", case == "a")

            @pytest.mark.llm_dataset("long")
            def test_item(item):
                pass
            """
        )
    )
    result = pytester.runpytest("--llm-max-field-chars=100")

    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
    run = runs.latest()
    assert "missing" not in run
    assert sorted(i["node_id"] for i in run["items"]) == [
        *(f"test_l.py::test_item[{stem}-item-{v}]" for v in "ab"),
        *(f"test_l.py::test_summary[{stem}-variant-{v}]" for v in "ab"),
    ]
    assert sorted(str(i["item_id"]) for i in run["items"] if i["item_id"]) == [
        f"{stem}-item-{v}" for v in "ab"
    ]


def test_keys_of_user_data_are_masked_and_kept_apart(pytester: pytest.Pytester, runs: Runs) -> None:
    # (before, a dict keyed by e-mail addresses, as @observe returns one, was stored as it was)
    pytester.makepyfile(
        test_keys=dedent(
            """\
            from pytest_llmobs import observe, start_span

            @observe
            def lookup(users):
                return {user: "ok" for user in users}

            def test_keys():
                with start_span("s", metadata={"ann@example.com": {"bob@example.com": 2}}) as span:
                    span.update(input={"carol@example.com": "vip", "dave@example.com": "new"})
                lookup(["erin@example.com"])
            """
        )
    )
    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    spans = {o["name"]: o for o in item["trace"]["observations"]}
    assert spans["s"]["input"] == {"<EMAIL>": "vip", "<EMAIL> (2)": "new"}
    assert spans["s"]["metadata"] == {"<EMAIL>": {"<EMAIL>": 2}}
    assert spans["lookup"]["output"] == {"<EMAIL>": "ok"}
    assert "example.com" not in json.dumps(item)


def test_keys_masked_alike_keep_every_value_also_beside_a_literal_numbered_key() -> None:
    from pytest_llmobs.governance import build_governance

    output = {f"user{k}@example.com": k for k in range(500)}
    output["<EMAIL> (3)"] = "literal"
    item = {"trace": {"observations": [{"output": output}]}}

    governed = build_governance(mode="default").item(item)["trace"]["observations"][0]["output"]

    assert sorted(governed.values(), key=str) == sorted(output.values(), key=str)
    assert governed["<EMAIL> (3)"] == 2 and governed["<EMAIL> (4)"] == 3


def test_a_text_equal_to_its_items_own_id_is_kept_as_the_id_only_in_that_item() -> None:
    from pytest_llmobs.governance import build_governance

    governance = build_governance(mode="default")

    def item(item_id: str, output: str) -> dict[str, object]:
        root = {"parent_id": None, "output": output, "metadata": {"item_id": item_id}}
        return {"item_id": item_id, "trace": {"observations": [root]}}

    own = governance.item(item("ann@example.com", "ann@example.com"))
    other = governance.item(item("q2", "ann@example.com"))
    again = governance.item(item("ann@example.com", "bob@example.com"))

    own_root, other_root = own["trace"]["observations"][0], other["trace"]["observations"][0]
    assert own["item_id"] == own_root["metadata"]["item_id"] == "ann@example.com"
    assert own_root["output"] == "ann@example.com"  # stored whole in the record anyway
    assert other_root["output"] == "<EMAIL>"  # another item's: masked as any text
    assert again["trace"]["observations"][0]["output"] == "<EMAIL>"


def test_integers_too_long_for_json_readers_are_stored_as_their_digits(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: an INTERNALERROR at the store, and the session's run was lost)
    pytester.makepyfile(
        """
        from pytest_llmobs import observe, start_span

        @observe
        def factorial_of_2000():
            return 10**5000

        def test_big(scorer):
            factorial_of_2000()
            with start_span("s", metadata={"sizes": [1, 10**4400]}):
                pass
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1", "-n", "0")

    result.assert_outcomes(passed=1)
    spans = {o["name"]: o for o in runs.latest()["items"][0]["trace"]["observations"]}
    assert spans["factorial_of_2000"]["output"] == "1" + "0" * 5000
    assert spans["s"]["metadata"]["sizes"] == [1, "1" + "0" * 4400]


def test_values_under_keys_naming_a_secret_are_masked_whole(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: {"password": "hunter2"} was stored as it was, e.g. a LangChain tool call's args)
    pytester.makepyfile(
        """
        from pytest_llmobs import start_span

        def test_tool():
            args = {"password": "hunter2", "DB_PASSWORD": "p4ss", "pin": {"token": 1234}}
            with start_span("tool", input={**args, "max_tokens": 5, "city": "Paris"}):
                pass
        """
    )

    pytester.runpytest("--llm-model=mock-llm-v1").assert_outcomes(passed=1)

    (span,) = [o for o in runs.latest()["items"][0]["trace"]["observations"] if o["name"] == "tool"]
    assert span["input"] == {
        "password": "<SECRET>",
        "DB_PASSWORD": "<SECRET>",
        "pin": {"token": "<SECRET>"},
        "max_tokens": 5,
        "city": "Paris",
    }
    off = pytester.runpytest("--llm-model=mock-llm-v1", "--llm-redact=off")
    off.assert_outcomes(passed=1)
    (kept,) = [o for o in runs.latest()["items"][0]["trace"]["observations"] if o["name"] == "tool"]
    assert kept["input"]["password"] == "hunter2"


def test_label_scores_keep_their_classes_so_accuracy_stays_right(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    # (before, both labels of a wrong prediction became <EMAIL>: accuracy 1.0 instead of 1/3)
    pytester.makepyfile(
        test_route=dedent(
            """\
            import pytest

            CASES = [("alice@acme.test", "bob@acme.test"), ("carol@acme.test", "dave@acme.test"),
                     ("erin@acme.test", "erin@acme.test")]

            @pytest.mark.parametrize("predicted, expected", CASES)
            def test_route(scorer, predicted, expected):
                scorer.label(predicted, expected, name="route")
                scorer.score("note", f"routed to {predicted}")
            """
        )
    )

    result = pytester.runpytest("--llm-threshold=accuracy_route >= 0.9", *xdist_args)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    run = runs.latest()
    assert runs.aggregates(run, "*")["accuracy_route"]["value"] == pytest.approx(1 / 3)
    scores = {
        item["node_id"].partition("[")[2]: {s["name"]: s for s in item["trace"]["scores"]}
        for item in run["items"]
    }
    route = scores["alice@acme.test-bob@acme.test]"]["route"]
    assert (route["value"], route["metadata"]["label_expected"]) == (
        "alice@acme.test",
        "bob@acme.test",
    )
    assert scores["alice@acme.test-bob@acme.test]"]["note"]["value"] == "routed to <EMAIL>"


def test_custom_maskers_from_ini_and_hook(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        mymaskers="def customer_ids(text):\n    return text.replace('CUST-42', '<CUSTOMER>')\n"
    )
    pytester.makeconftest(
        "def pytest_llmobs_register_maskers(config):\n"
        "    return [lambda text: text.replace('Project Falcon', '<CODENAME>')]\n"
    )
    pytester.makeini("[pytest]\nllm_redact_maskers = mymaskers:customer_ids\n")
    pytester.makepyfile(
        test_raw="def test_raw(scorer):\n    scorer.score('n', 'CUST-42 on Project Falcon')\n"
    )
    pytester.syspathinsert()
    pytester.runpytest().assert_outcomes(passed=1)
    assert runs.latest()["items"][0]["trace"]["scores"][0]["value"] == "<CUSTOMER> on <CODENAME>"


SUBDIRECTORY_CONFTEST = """\
import pytest_llmobs

@pytest_llmobs.evaluator
def politeness(output):
    return 1.0 if "please" in output.lower() else 0.0

@pytest_llmobs.run_evaluator
def item_total(items):
    return float(len(items))

def pytest_llmobs_register_evaluators(registry, config):
    registry.add(politeness)
    registry.add_run(item_total)

def pytest_llmobs_register_maskers(config):
    return [lambda text: text.replace("Project Falcon", "<CODENAME>")]
"""


def test_a_conftest_pytest_loads_while_collecting_registers_its_maskers_and_evaluators(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: hooks in tests/sub/conftest.py ran only with tests/sub on the command line, so a
    # plain `pytest` stored what its masker hides, in clear)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        **{
            "tests/sub/conftest": SUBDIRECTORY_CONFTEST,
            "tests/sub/test_b": (
                "def test_b(scorer):\n"
                "    scorer.score('note', 'about Project Falcon')\n"
                "    assert scorer.politeness('please') == 1.0\n"
            ),
        }
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    run = runs.latest()
    scores = {s["name"]: s["value"] for s in run["items"][0]["trace"]["scores"]}
    assert scores == {"note": "about <CODENAME>", "politeness": 1.0}
    assert runs.aggregates(run, "*")["item_total"]["value"] == 1.0


def test_a_dataset_stored_before_a_later_conftest_loaded_is_masked_by_its_maskers(
    pytester: pytest.Pytester,
) -> None:
    # (before: tests/a collected first stored the dataset's snapshot in clear; the masker of
    # tests/sub/conftest.py, loaded afterwards, masked only the items)
    pytester.makeini("[pytest]\n")
    pytester.makefile(
        ".jsonl", **{"datasets/caps": '{"id": "one", "input": "about Project Falcon"}'}
    )
    pytester.makepyfile(
        **{
            "tests/a/test_a": (
                "import pytest\n\n@pytest.mark.llm_dataset('caps')\ndef test_a(item):\n    pass\n"
            ),
            "tests/sub/conftest": SUBDIRECTORY_CONFTEST,
            "tests/sub/test_b": "def test_b():\n    pass\n",
        }
    )

    pytester.runpytest("--llm-model=mock-llm-v1").assert_outcomes(passed=2)

    with contextlib.closing(sqlite3.connect(pytester.path / ".llmobs" / "llmobs.db")) as db:
        (snapshot,) = db.execute("SELECT data FROM datasets").fetchone()
    assert json.loads(snapshot)[0]["input"] == "about <CODENAME>"


def test_a_run_evaluator_only_xdist_workers_know_fails_the_run_saying_where_to_register_it(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        **{
            "tests/sub/conftest": SUBDIRECTORY_CONFTEST,
            "tests/sub/test_b": "def test_b(scorer):\n    scorer.score('note', 'Project Falcon')\n",
        }
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1", "-n", "2")

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR run evaluator 'item_total' was registered on xdist's workers only (by a "
            "conftest below the directories given to pytest, which the controller does not "
            "load), so it was not run: register it in the rootdir's conftest.py or in a plugin"
        ]
    )
    run = runs.latest()
    assert run["items"][0]["trace"]["scores"][0]["value"] == "<CODENAME>"  # masked on the worker


def test_a_masker_that_fails_on_one_text_stores_a_placeholder_and_fails_the_run(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    # (an INTERNALERROR after the first test before, and that test's item was lost; then the
    # error quoted the text, and the line about it was stored as <MASKING FAILED> when the
    # masker failed on it too)
    pytester.makepyfile(
        mymaskers=(
            "def picky(text):\n"
            "    if 'Falcon' in text or '<' in text:\n"
            "        raise ValueError(f'cannot mask {text}')\n"
            "    return text\n"
        )
    )
    pytester.makepyfile(
        test_raw=(
            "def test_one(scorer):\n    scorer.score('n', 'Project Falcon')\n\n"
            "def test_two(scorer):\n    scorer.score('n', 'Project Eagle')\n"
        )
    )
    pytester.makeini("[pytest]\npythonpath = .\n")  # (xdist's workers import it too)

    result = pytester.runpytest("--llm-redact-maskers=mymaskers:picky", *xdist_args)

    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = (
        "masker mymaskers:picky failed: raised ValueError at mymaskers.py:3 (its message is not "
        "shown: it may quote the text); 1 text(s) stored as <MASKING FAILED> instead"
    )
    result.stdout.fnmatch_lines([f"*ERROR {line}"])
    assert "Falcon" not in result.stdout.str()
    run = runs.latest()
    assert run["status"] == "failed"
    assert run["errors"] == [line]
    values = {item["node_id"]: item["trace"]["scores"][0]["value"] for item in run["items"]}
    assert values == {
        "test_raw.py::test_one": "<MASKING FAILED>",
        "test_raw.py::test_two": "Project Eagle",
    }


@pytest.mark.parametrize(
    ("conftest", "message"),
    [
        (
            "def none(text):\n    return None\n\n"
            "def pytest_llmobs_register_maskers(config):\n    return [none]\n",
            "ERROR: masker conftest:none returned NoneType for a test string; expected a "
            "function str -> str",
        ),
        (
            "def two(text, other):\n    return text\n\n"
            "def pytest_llmobs_register_maskers(config):\n    return [two]\n",
            "ERROR: masker conftest:two raised TypeError (*missing 1 required positional "
            "argument: 'other') on a test string; expected a function str -> str",
        ),
        (
            "def pytest_llmobs_register_maskers(config):\n    return ['not a function']\n",
            "ERROR: pytest_llmobs_register_maskers returned 'not a function' (str), which is not "
            "callable; expected functions str -> str",
        ),
    ],
)
def test_a_masker_that_cannot_mask_is_a_usage_error(
    pytester: pytest.Pytester, conftest: str, message: str
) -> None:
    pytester.makeconftest(conftest)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not (pytester.path / ".llmobs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--llm-redact=loud"],
            "ERROR: --llm-redact: 'loud' is not a redaction mode; valid: off, default, strict",
        ),
        (
            ["--llm-trace-sample=2"],
            "ERROR: --llm-trace-sample: 2.0 is not a share; expected 0..1 (e.g. 0.1)",
        ),
        (["--llm-trace-sample=x"], "ERROR: --llm-trace-sample: 'x' is not a number"),
        (
            ["--llm-max-field-chars=5"],
            "ERROR: --llm-max-field-chars: 5 is too small; expected >= 100",
        ),
        (
            ["--llm-redact-maskers=nope"],
            "ERROR: masker 'nope': expected 'package.module:function' (a function str -> str)",
        ),
        (["--llm-redact-maskers=nosuchmod:f"], "ERROR: masker 'nosuchmod:f' cannot be imported: *"),
    ],
)
def test_bad_governance_options(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_sampling_keeps_scores_and_failures_and_strips_other_payloads(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_many=dedent(
            """\
            import pytest
            from pytest_llmobs import start_span

            @pytest.mark.parametrize("n", range(40))
            def test_many(n, scorer):
                with start_span("work", input=f"payload {n}") as span:
                    span.update(output=f"result {n}")
                scorer.score("value", n)
                assert n % 10 != 3
            """
        )
    )
    pytester.runpytest("--llm-trace-sample=0.25").assert_outcomes(passed=36, failed=4)
    run = runs.latest()
    items = run["items"]
    assert len(items) == 40
    assert sorted(i["trace"]["scores"][0]["value"] for i in items) == list(range(40))
    mean = runs.aggregates(run, "*")["mean_value"]
    assert mean["value"] == sum(range(40)) / 40  # aggregates stay exact

    def kept(item: dict) -> bool:
        return item["trace"]["observations"][1]["input"] is not None

    failed = [i for i in items if i["outcome"] == "failed"]
    assert failed and all(kept(i) for i in failed)
    passed = [i for i in items if i["outcome"] == "passed"]
    kept_ids = {i["trace"]["id"] for i in passed if kept(i)}
    expected = {i["trace"]["id"] for i in passed if int(i["trace"]["id"][:8], 16) / 2**32 < 0.25}
    assert kept_ids == expected and 0 < len(kept_ids) < len(passed)
    stripped = next(i for i in passed if not kept(i))
    assert stripped["trace"]["metadata"]["llmobs_sampled_out"] is True


def test_long_fields_are_truncated_with_their_length(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        test_big=dedent(
            """\
            from pytest_llmobs import start_span

            def test_big():
                with start_span("big", input="x" * 5000) as span:
                    span.update(output="y" * 50)
            """
        )
    )
    pytester.runpytest("--llm-max-field-chars=1000").assert_outcomes(passed=1)
    big = runs.latest()["items"][0]["trace"]["observations"][1]
    assert big["input"] == "x" * 1000 + "…[truncated, 5000 chars]"
    assert big["output"] == "y" * 50


@pytest.mark.parametrize("mode", ["off", "default", "strict"])
def test_a_text_cut_before_keeps_its_length_when_governed_again(mode: str) -> None:
    from pytest_llmobs.governance import build_governance

    governance = build_governance(mode=mode, max_field_chars=100)
    once = governance.value({"output": "x" * 250})

    assert once == {"output": "x" * 100 + "…[truncated, 250 chars]"}
    assert governance.value(once) == once  # (llmobs merge governs shards' records again)


def test_prune_keeps_baselines_and_reports_size(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile("def test_x(scorer):\n    scorer.score('ok', True)\n")
    for name in ("r1", "r2", "r3", "r4"):
        pytester.runpytest(f"--llm-run-name={name}").assert_outcomes(passed=1)

    def llmobs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest_llmobs.cli", *args],
            cwd=pytester.path,
            capture_output=True,
            text=True,
            check=False,
        )

    assert llmobs("baseline", "save", "keep-me", "r1").returncode == 0
    pruned = llmobs("prune", "--keep-last", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("deleted 2 run(s); saved baselines kept; store ")
    names = [line.split()[1] for line in llmobs("runs").stdout.splitlines()[1:-1]]
    assert names == ["r4", "r1"]
    assert llmobs("prune", "--older-than", "soon").stderr.strip() == (
        "llmobs: error: --older-than: 'soon' is not an age; expected e.g. 30d, 12h or 2w"
    )
    assert "deleted 0 run(s)" in llmobs("prune", "--older-than", "30d").stdout


def test_run_experiment_masks_what_it_stores_by_default(tmp_path: Path) -> None:
    from pytest_llmobs import run_experiment

    items = [{"id": "a", "input": f"contact {PII['email']}", "expected_output": "ok"}]
    result = run_experiment(
        name="masked",
        dataset=items,
        task=lambda item: f"mailed {PII['email']}",
        store=tmp_path / "store",
    )
    for thread in threading.enumerate():  # the store closes (checkpoints its WAL) in the back
        if thread.name == "llmobs-store-close":
            thread.join()
    files = list((tmp_path / "store").iterdir())
    assert result.run_id and files
    assert all(leaks(f.read_bytes()) == [] for f in files)
    from pytest_llmobs.store import Store

    with contextlib.closing(Store(tmp_path / "store" / "llmobs.db")) as store:
        stored = store.load_run(result.run_id)
    assert "mailed <EMAIL>" in json.dumps(stored)
