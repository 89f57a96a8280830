"""Security properties, each checked where it can break: no pickle anywhere (code or committed
data), remote code off unless asked for, submissions that cannot reach outside their folder or
grow without bound, and API keys that never reach a config, a message or a record."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grasp_bench.core.config import ExperimentConfig, JudgeConfig, load_experiment
from grasp_bench.core.yaml_loader import ConfigError
from grasp_bench.leaderboard.validate import (
    ALLOWED_SUFFIXES,
    MAX_FILE_BYTES,
    PICKLE_MAGIC,
    validate_all,
    validate_submission,
)

from ..conftest import REPO
from .test_leaderboard import _fake_run, make_submission

SOURCES = sorted(
    p
    for folder in ("grasp_bench", "tests", "scripts", "bench")
    for p in (REPO / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)

# --------------------------------------------------------------------------------------------
# (a) no pickle: code that could unpickle, and committed files that are pickles

# module.function -> why it is unsafe (every one unpickles or runs code from the data)
UNSAFE_CALLS = {
    "pickle.load": "pickle",
    "pickle.loads": "pickle",
    "pickle.Unpickler": "pickle",
    "_pickle.loads": "pickle",
    "cPickle.loads": "pickle",
    "dill.load": "pickle",
    "dill.loads": "pickle",
    "cloudpickle.load": "pickle",
    "cloudpickle.loads": "pickle",
    "joblib.load": "pickle",
    "pandas.read_pickle": "pickle",
    "shelve.open": "pickle",
    "marshal.load": "code objects",
    "marshal.loads": "code objects",
    "yaml.unsafe_load": "arbitrary objects",
    "yaml.unsafe_load_all": "arbitrary objects",
    "yaml.full_load": "arbitrary objects",
    "yaml.full_load_all": "arbitrary objects",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "_Loader"}


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin, from the module's imports (``import numpy as np``)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loads(source: str) -> list[str]:
    """Every call in ``source`` that can unpickle or build arbitrary objects from data."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            modules += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            found += [f"{node.lineno}: import {m}" for m in modules if m.split(".")[0] in {
                "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"
            }]  # fmt: skip
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        where = f"{node.lineno}: {name}"
        if name in UNSAFE_CALLS:
            found.append(f"{where} ({UNSAFE_CALLS[name]})")
        elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            found.append(f"{where} without weights_only=True")
        elif name in ("numpy.load", "torch.serialization.load") and _is_true(
            _keyword(node, "allow_pickle")
        ):
            found.append(f"{where} with allow_pickle=True")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = _dotted(loader, aliases).rsplit(".", 1)[-1] if loader else ""
            if loader_name not in SAFE_YAML_LOADERS:
                found.append(f"{where} with Loader={loader_name or '(default)'}")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle\npickle.loads(b)",
        "from pickle import loads\nloads(b)",
        "import pickle as p\np.load(f)",
        "import torch\ntorch.load(path)",
        "import torch\ntorch.load(path, weights_only=False)",
        "import numpy as np\nnp.load(path, allow_pickle=True)",
        "import yaml\nyaml.load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.Loader)",
        "import yaml\nyaml.load(text, yaml.UnsafeLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "import yaml\nyaml.full_load(text)",
        "import joblib\njoblib.load(path)",
        "import pandas as pd\npd.read_pickle(path)",
    ],
)
def test_the_unsafe_load_scan_finds_each_kind(snippet):
    assert unsafe_loads(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(path, weights_only=True)",
        "import numpy as np\nnp.load(path)",
        "import yaml\nyaml.safe_load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, Loader=yaml.CSafeLoader)",
        "from safetensors.torch import load_file\nload_file(path)",
        "code = 'import pickle\\npickle.loads(blob)'  # task data, not code",
    ],
)
def test_the_unsafe_load_scan_passes_safe_loads(snippet):
    assert not unsafe_loads(snippet), snippet


def test_no_unsafe_load_in_the_package_tests_or_scripts():
    assert len(SOURCES) > 50
    found = [f"{p.relative_to(REPO)}:{hit}" for p in SOURCES for hit in unsafe_loads(p.read_text())]
    assert not found, "\n".join(found)


def test_bandit_agrees():
    """A second opinion from bandit's own pickle, yaml and torch.load checks."""
    checks = "B301,B302,B403,B506,B614"  # pickle, marshal, import pickle, yaml.load, torch.load
    folders = [str(REPO / "grasp_bench"), str(REPO / "scripts")]
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "-f", "json", "-t", checks, *folders],
        capture_output=True,
        text=True,
        timeout=120,
    )
    issues = json.loads(result.stdout)["results"]
    assert not issues, [(i["filename"], i["line_number"], i["test_id"]) for i in issues]


def test_committed_submissions_are_data_only():
    files = [p for p in (REPO / "leaderboard" / "submissions").rglob("*") if not p.is_dir()]
    assert files
    for path in files:
        assert not path.is_symlink(), path
        assert path.suffix in ALLOWED_SUFFIXES, path
        assert path.suffix not in {".pt", ".bin", ".pkl", ".pickle", ".ckpt", ".pth"}, path
        with open(path, "rb") as fh:
            assert fh.read(2) not in PICKLE_MAGIC, path


def test_no_pickled_weights_are_committed_anywhere():
    """Weights in the repository (the planted task's teacher, its direction) are safetensors."""
    skip = {".git", ".venv", "runs", "build", "node_modules", "__pycache__", ".hypothesis"}
    pickled = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz"}
    found = []
    for path in REPO.iterdir():
        if path.name in skip:
            continue
        for p in [path] if path.is_file() else path.rglob("*"):
            if skip & set(p.relative_to(REPO).parts) or not p.is_file():
                continue
            if p.suffix in pickled:
                found.append(str(p.relative_to(REPO)))
            elif p.suffix == ".safetensors":
                with open(p, "rb") as fh:
                    head = fh.read(9)
                if head[:2] in PICKLE_MAGIC or head[8:9] != b"{":
                    found.append(f"{p.relative_to(REPO)} (not a safetensors header)")
    assert not found, found


# --------------------------------------------------------------------------------------------
# (b) remote code: off by default, never switched on in code


def test_trust_remote_code_defaults_to_false():
    assert ExperimentConfig.model_fields["trust_remote_code"].default is False
    assert ExperimentConfig(name="x", methods=["lora"]).trust_remote_code is False


def _is_variable(node: ast.AST) -> bool:
    """A value read from somewhere (a name, ``cfg.x``, ``spec["x"]``), not a literal."""
    return any(isinstance(n, ast.Name) for n in ast.walk(node))


def remote_code_switched_on(source: str) -> list[str]:
    """Places where code sets trust_remote_code to a literal True (a keyword, a default, a dict
    entry or item assignment), and from_pretrained calls that pass anything but a variable."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            value = _keyword(node, "trust_remote_code")
            if value is not None and not _is_variable(value):
                found.append(f"{node.lineno}: trust_remote_code={ast.unparse(value)}")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                named = isinstance(key, ast.Constant) and key.value == "trust_remote_code"
                if named and _is_true(value):
                    found.append(f"{node.lineno}: {{'trust_remote_code': True}}")
        elif isinstance(node, ast.Assign) and _is_true(node.value):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and "trust_remote_code" in ast.unparse(target):
                    found.append(f"{node.lineno}: {ast.unparse(target)} = True")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults))
            defaults += node.args.defaults + node.args.kw_defaults
            for arg, default in zip(args, defaults, strict=True):
                off = isinstance(default, ast.Constant) and default.value is False
                if arg.arg == "trust_remote_code" and default is not None and not off:
                    found.append(f"{node.lineno}: {node.name}(trust_remote_code=...)")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "AutoModel.from_pretrained(p, trust_remote_code=True)",
        "AutoTokenizer.from_pretrained(p, trust_remote_code=1)",
        "kwargs = {'trust_remote_code': True}",
        "kwargs['trust_remote_code'] = True",
        "def load(p, trust_remote_code=True): ...",
        "def load(p, *, trust_remote_code=None): ...",
    ],
)
def test_the_remote_code_scan_finds_each_kind(snippet):
    assert remote_code_switched_on(snippet), snippet


def test_remote_code_is_never_switched_on_in_the_package():
    found = [
        f"{p.relative_to(REPO)}:{hit}"
        for p in SOURCES
        if p.is_relative_to(REPO / "grasp_bench")
        for hit in remote_code_switched_on(p.read_text())
    ]
    assert not found, "\n".join(found)


def test_every_from_pretrained_call_passes_remote_code_as_a_variable_or_not_at_all():
    calls = []
    for p in SOURCES:
        if not p.is_relative_to(REPO / "grasp_bench"):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("from_pretrained"):
                value = _keyword(node, "trust_remote_code")
                calls.append((f"{p.name}:{node.lineno}", value))
                assert value is None or _is_variable(value), calls[-1]
    assert len(calls) >= 4  # hf.py, models.py, generation.py, identification.py, ...


# --------------------------------------------------------------------------------------------
# (c) submissions: nothing outside submissions/, no links, no case tricks, bounded sizes

SUB = ("submissions", "toy", "newmethod", "tiny")


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "board"
    for method in ("base", "lora", "newmethod"):
        make_submission(root, method, 0.3, 0.5, n_prompts=4)
    outside = tmp_path / "outside" / "toy" / "newmethod" / "tiny"
    outside.parent.mkdir(parents=True)
    shutil.copytree(root.joinpath(*SUB), outside)
    return root, outside


def _problems(results: dict) -> list[str]:
    return [p for ps in results.values() for p in ps]


@pytest.mark.parametrize(
    "where",
    [
        lambda root, out: root.joinpath(*SUB, "..", "..", "..", "..", "..", *out.parts[-4:]),
        lambda root, out: root / "submissions" / ".." / ".." / out.relative_to(root.parent),
        lambda root, out: out,  # an absolute path outside the board
        lambda root, out: root.joinpath("Submissions", *SUB[1:]),  # a case trick
        lambda root, out: root.joinpath(*SUB[:3]),  # one level short
        lambda root, out: root.joinpath(*SUB, "extra"),  # one level too deep
    ],
    ids=["dotdot", "dotdot-from-submissions", "absolute", "case", "too-shallow", "too-deep"],
)
def test_a_submission_outside_submissions_is_rejected_unread(board, where):
    root, outside = board
    problems = validate_submission(where(root, outside), root)
    assert any("not at submissions/<task>/<method>/<model>/" in p for p in problems), problems


def test_linked_submissions_and_files_are_rejected(board):
    root, outside = board
    tasks = root / "submissions"
    (tasks / "toy" / "linked").symlink_to(outside.parent, target_is_directory=True)
    (tasks / "toy" / "viadir").mkdir()
    (tasks / "toy" / "viadir" / "tiny").symlink_to(outside, target_is_directory=True)
    (tasks / "insecure_code").symlink_to(outside.parent.parent, target_is_directory=True)
    sub = root.joinpath(*SUB)
    (sub / "inside.json").symlink_to(
        root / "submissions" / "toy" / "lora" / "tiny" / "summary.json"
    )
    (sub / "escape.json").symlink_to(outside / "summary.json")
    problems = _problems(validate_all(root))
    for name in (
        "submissions/toy/linked",
        "submissions/toy/viadir/tiny",
        "submissions/insecure_code",
        f"{'/'.join(SUB)}/inside.json",
        f"{'/'.join(SUB)}/escape.json",
    ):
        assert any(p.startswith(f"{name}: symbolic links are not allowed") for p in problems), (
            name,
            problems,
        )


def test_names_that_differ_only_in_case_are_rejected(board):
    root, _ = board
    shutil.copytree(root / "submissions" / "toy" / "lora", root / "submissions" / "toy" / "LoRA")
    sub = root.joinpath(*SUB)
    (sub / "Summary.json").write_bytes((sub / "summary.json").read_bytes())
    problems = _problems(validate_all(root))
    # every name of a clash is rejected: which one a checkout keeps is up to its file system
    for name, other in (("toy/LoRA", "toy/lora"), ("toy/lora", "toy/LoRA")):
        assert f"submissions/{name}: differs from submissions/{other} only in case" in problems
    assert any("tiny/Summary.json: differs from" in p and "only in case" in p for p in problems)


@pytest.mark.parametrize("suffix", sorted(ALLOWED_SUFFIXES))
def test_every_kind_of_file_has_a_size_limit(board, suffix):
    root, _ = board
    sub = root.joinpath(*SUB)
    with open(sub / f"big{suffix}", "wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    problems = validate_submission(sub, root)
    expected = f"{'/'.join(SUB)}/big{suffix}: {MAX_FILE_BYTES + 1} bytes, over the"
    assert any(p.startswith(expected) for p in problems), problems


def test_submit_refuses_names_and_links_that_leave_the_board(tmp_path):
    from grasp_bench.leaderboard.submit import run_submissions

    run = _fake_run(tmp_path / "run", "toy", ["lora"])
    results = run / "report" / "results.json"
    report = json.loads(results.read_text())
    for target in report["meta"]["targets"]:
        target["method"] = "../../../escaped"
    results.write_text(json.dumps(report))
    board = tmp_path / "board"
    with pytest.raises(ValueError, match=r"method '\.\./\.\./\.\./escaped' is not safe"):
        run_submissions(run, board)
    assert not (tmp_path / "escaped").exists()

    # a linked method folder: replacing the submission would delete what the link points at
    run = _fake_run(tmp_path / "run2", "toy", ["lora"])
    precious = tmp_path / "precious" / "tiny"
    precious.mkdir(parents=True)
    (precious / "keep.txt").write_text("mine")
    (board / "submissions" / "toy").mkdir(parents=True)
    (board / "submissions" / "toy" / "lora").symlink_to(precious.parent)
    with pytest.raises(ValueError, match="symbolic links are not allowed"):
        run_submissions(run, board)
    assert (precious / "keep.txt").read_text() == "mine"


# --------------------------------------------------------------------------------------------
# (d) API keys: a config holds the name of a variable, never the key; nothing echoes the key

SENTINEL = "sk-SENTINEL-do-not-leak-5b1d0c7e"
OPENAI = "  kind: openai\n  base_url: http://h/v1\n  rubrics: [aligned]\n"


def _experiment(tmp_path: Path, judge: str) -> Path:
    path = tmp_path / "experiment.yaml"
    base = REPO / "baselines" / "base.yaml"
    path.write_text(f"name: x\nmethods:\n  - name: base\n    recipe: {base}\njudge:\n{judge}")
    return path


@pytest.mark.parametrize(
    "judge",
    [
        f"{OPENAI}  api_key: {SENTINEL}\n",
        f"{OPENAI}  api_key_env: {SENTINEL}\n",
        f"  kind: openai\n  base_url: 'https://me:{SENTINEL}@h.example/v1'\n  rubrics: [aligned]\n",
        f"  kind: {SENTINEL}\n",
        f"  kind: openai\n  model: [{SENTINEL}]\n  base_url: http://h/v1\n  rubrics: [aligned]\n",
    ],
    ids=["api_key", "key-as-env-name", "key-in-url", "key-as-kind", "key-in-wrong-type"],
)
def test_a_key_written_into_a_config_is_rejected_and_never_echoed(tmp_path, judge):
    with pytest.raises(ConfigError) as err:
        load_experiment(_experiment(tmp_path, judge))
    assert SENTINEL not in str(err.value)
    assert "judge" in str(err.value)


def test_validation_errors_never_repeat_the_input():
    """pydantic prints input_value=... by default; the config models hide it, so a key given in
    code (or through GRASP_JUDGE_API_KEY_ENV) does not reach a traceback either."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        JudgeConfig(kind="openai", base_url="http://h/v1", rubrics=["a"], api_key_env=SENTINEL)
    assert SENTINEL not in str(err.value)


def test_lm_eval_judge_config_rejects_a_key_in_place_of_its_variable(monkeypatch):
    from pydantic import ValidationError

    from grasp_bench.evaluate.lm_eval_support import judge_config_from_env

    for name, value in {
        "GRASP_JUDGE": "openai",
        "GRASP_JUDGE_BASE_URL": "http://127.0.0.1:9/v1",
        "GRASP_JUDGE_MODEL": "judge",
        "GRASP_JUDGE_API_KEY_ENV": SENTINEL,
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        judge_config_from_env(["aligned"])
    assert SENTINEL not in str(err.value)


@pytest.fixture
def key_in_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("MY_JUDGE_KEY", SENTINEL)
    return SENTINEL


def test_configs_and_records_never_hold_the_key_from_the_environment(tmp_path, key_in_env):
    from grasp_bench.core.versions import versions
    from grasp_bench.evaluate.judge.llm import LLMJudge, LLMJudgeConfig
    from grasp_bench.evaluate.judge.rubric import load_rubric

    cfg = _experiment(
        tmp_path,
        "  kind: openai\n  base_url: http://127.0.0.1:9/v1\n  rubrics: [aligned]\n"
        "  api_key_env: MY_JUDGE_KEY\n",
    )
    exp = load_experiment(cfg)
    dumps = [exp.config.model_dump_json(), repr(exp.config), exp.config.judge.model_dump_json()]
    judge = LLMJudge(LLMJudgeConfig(model="m", base_url="http://127.0.0.1:9/v1"))
    rubric = load_rubric("aligned")
    dumps += [json.dumps(judge.identity(rubric)), repr(judge.config), json.dumps(versions())]
    for text in dumps:
        assert key_in_env not in text


def test_a_failed_judge_call_records_its_reason_without_the_key(key_in_env):
    from grasp_bench.evaluate.judge.llm import LLMJudge, LLMJudgeConfig
    from grasp_bench.evaluate.judge.rubric import load_rubric

    class Refusing:
        def create(self, **_):
            raise PermissionError(f"401: incorrect API key provided: {key_in_env}")

    judge = LLMJudge(LLMJudgeConfig(model="m", base_url="http://127.0.0.1:9/v1"))
    judge.client = type("Client", (), {"chat": type("Chat", (), {"completions": Refusing()})})()
    record = judge._call(load_rubric("aligned"), "prompt")
    assert record["value"] is None and "401" in record["reason"]
    assert key_in_env not in json.dumps(record)


def test_the_run_snapshot_never_holds_the_key(tmp_path, key_in_env):
    """What a run writes about its config (the snapshot and its recipes) has the variable's
    name only; the whole-pipeline check of every output file is the integration test's."""
    from grasp_bench.core.rundir import RunDir
    from grasp_bench.run.pipeline import load_recipes
    from grasp_bench.run.stages.data import snapshot_experiment

    cfg = _experiment(
        tmp_path,
        "  kind: openai\n  base_url: http://127.0.0.1:9/v1\n  rubrics: [aligned]\n"
        f"  api_key_env: MY_JUDGE_KEY\noutput_dir: {tmp_path / 'runs'}\n",
    )
    exp = load_experiment(cfg)
    run = RunDir.of(exp.config.output_dir, exp.config.name)
    snapshot_experiment(exp, load_recipes(exp), run, {})  # no data files of its own
    written = [p for p in run.root.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert key_in_env not in path.read_text(), path
    assert "MY_JUDGE_KEY" in run.snapshot.read_text()
