"""Every input format: files, folders, multi-document YAML, kubectl Lists, Helm output, stdin, and
broken inputs that become ERROR results instead of crashes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stockade.compliance.workloads.loader import load_paths, load_text
from stockade.model import InputError, Status

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: shop
spec:
  containers:
  - name: app
    image: nginx:1.27
"""

HELM = """---
# Source: web/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: release-web
---
# Source: web/templates/hpa.yaml
# (disabled: this template rendered nothing)
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: release-web
spec:
  template:
    spec:
      serviceAccountName: release-web
      containers:
        - name: web
          image: "nginx:1.16.0"
          imagePullPolicy: IfNotPresent
"""


def names(loaded) -> list[str]:
    return [m.obj["metadata"]["name"] for m in loaded.manifests]


def test_multi_document_yaml_keeps_order_and_locations() -> None:
    loaded = load_text(POD.format(name="a") + "---\n" + POD.format(name="b") + "...\n", "f.yaml")
    assert names(loaded) == ["a", "b"]
    assert [m.location for m in loaded.manifests] == ["f.yaml#1", "f.yaml#2"]


def test_helm_rendered_output_names_the_template() -> None:
    loaded = load_text(HELM, "rendered.yaml")
    assert names(loaded) == ["release-web", "release-web"]
    assert loaded.manifests[1].location == "rendered.yaml#4 (web/templates/deployment.yaml)"
    assert not loaded.errors


def test_kubectl_list_json_items_and_api_lists_without_kinds() -> None:
    kubectl = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            json.loads(
                json.dumps(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "d"},
                        "spec": {},
                    }
                )
            )
        ],
    }
    api = {
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "1"},
        "items": [{"metadata": {"name": "p"}, "spec": {"containers": []}}],
    }
    loaded = load_text(json.dumps(kubectl), "k.json")
    load_text(json.dumps(api, indent="\t"), "api.json", loaded)
    assert [(m.obj["kind"], m.obj["metadata"]["name"]) for m in loaded.manifests] == [
        ("Deployment", "d"),
        ("Pod", "p"),
    ]


def test_malformed_documents_are_errors_and_the_rest_is_read() -> None:
    text = POD.format(name="a") + "---\nkind: Pod\nmetadata: {name: [\n---\n" + POD.format(name="c")
    loaded = load_text(text, "mixed.yaml")
    assert names(loaded) == ["a", "c"]
    (err,) = loaded.errors
    assert err.status == Status.ERROR and err.resource.name == "mixed.yaml#2"
    assert err.details.reason.startswith("invalid YAML: ")
    assert err.details.reason.endswith("(line 13)")


def test_windows_line_endings_split_documents_too() -> None:
    """A file saved with CRLF: a broken document is still one ERROR among read documents, and
    Helm's Source comments still name the templates."""
    text = POD.format(name="a") + "---\nkind: Pod\nmetadata: {name: [\n---\n" + POD.format(name="c")
    loaded = load_text(text.replace("\n", "\r\n"), "crlf.yaml")
    assert names(loaded) == ["a", "c"]
    assert [e.resource.name for e in loaded.errors] == ["crlf.yaml#2"]
    helm = load_text(HELM.replace("\n", "\r\n"), "rendered.yaml")
    assert [m.location for m in helm.manifests] == [
        "rendered.yaml#2 (web/templates/serviceaccount.yaml)",
        "rendered.yaml#4 (web/templates/deployment.yaml)",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid JSON: "),
        ("just some words\n", "not a Kubernetes object (a str)"),
        ("- a\n- b\n", "not a Kubernetes object (a list)"),
        ("key: [unclosed\n", "invalid YAML: "),
    ],
)
def test_garbage_gives_a_reason(text: str, reason: str) -> None:
    loaded = load_text(text, "g.yaml")
    assert not loaded.manifests and loaded.errors[0].details.reason.startswith(reason)


def test_folders_are_walked_recursively_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "one.yaml").write_text(POD.format(name="one"))
    (tmp_path / "a" / "b" / "two.yml").write_text(POD.format(name="two"))
    (tmp_path / "a" / "b" / "three.json").write_text(
        json.dumps({"kind": "Pod", "metadata": {"name": "three"}})
    )
    (tmp_path / ".git" / "x.yaml").write_text(POD.format(name="hidden"))
    (tmp_path / "README.md").write_text("# not a manifest")
    (tmp_path / "values.yaml").write_text("replicaCount: 1\n")  # a mapping without kind: ignored
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    loaded = load_paths([str(tmp_path)])
    assert sorted(names(loaded)) == ["one", "three", "two"]
    (err,) = loaded.errors
    assert err.resource.name.endswith("binary.yaml") and "not UTF-8" in err.details.reason


def test_folders_linked_in_are_walked_once_and_links_up_the_tree_end(tmp_path: Path) -> None:
    """A kustomize tree that links its base in (``deploy/base -> ../src/.../base``): the linked
    folder's manifests are checked; a link back up the tree does not loop."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "pod.yaml").write_text(POD.format(name="linked"))
    tree = tmp_path / "deploy"
    (tree / "overlay").mkdir(parents=True)
    (tree / "base").symlink_to(shared)
    (tree / "overlay" / "up").symlink_to(tree)  # a cycle
    (tree / "overlay" / "own.yaml").write_text(POD.format(name="own"))
    loaded = load_paths([str(tree)])
    assert sorted(names(loaded)) == ["linked", "own"]
    assert loaded.errors == []


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_paths([str(tmp_path / "nope.yaml")])


def test_unreadable_file_is_an_error_result(tmp_path: Path) -> None:
    # Reading /proc/self/mem from its start fails with EIO, even as root: a real OSError.
    (tmp_path / "mem.yaml").symlink_to("/proc/self/mem")
    (tmp_path / "ok.yaml").write_text(POD.format(name="ok"))
    loaded = load_paths([str(tmp_path)])
    assert names(loaded) == ["ok"]
    (err,) = loaded.errors
    assert err.resource.name.endswith("mem.yaml") and err.details.reason


def test_stdin_dash() -> None:
    code = (
        "from stockade.compliance.workloads.loader import load_paths;"
        "print([m.location for m in load_paths(['-']).manifests])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=POD.format(name="s"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "['<stdin>#1']", out.stderr


def test_unrendered_helm_templates_say_so() -> None:
    text = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ include "web.fullname" . }}\n'
    (err,) = load_text(text, "templates/pod.yaml").errors
    assert "unrendered template" in err.details.reason and "helm template" in err.details.reason


def test_a_template_that_starts_with_an_action_says_so() -> None:
    """A chart's template opening with ``{{-`` looks like JSON to a first glance."""
    text = "{{- /* the objects */ -}}\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}\n"
    (err,) = load_text(text, "templates/objects.yaml").errors
    assert "unrendered template" in err.details.reason and "helm template" in err.details.reason


def test_a_stream_of_json_objects_is_one_document_each() -> None:
    """``kubectl get pods -o json | jq '.items[]' > pods.json``: objects one after another."""
    pods = [yaml.safe_load(POD.format(name=n)) for n in ("a", "b")]
    pods[1]["spec"]["hostPID"] = True
    text = "\n".join(json.dumps(p, indent=2) for p in pods) + "\n"
    loaded = load_text(text, "pods.json")
    assert names(loaded) == ["a", "b"] and not loaded.errors
    assert [m.location for m in loaded.manifests] == ["pods.json#1", "pods.json#2"]
    broken = load_text(text + '{"kind": "Pod", ' + "1" * 5000 + "}", "pods.json")
    assert names(broken) == ["a", "b"]
    assert [e.resource.name for e in broken.errors] == ["pods.json#3"]
    deep = load_text(text + "[" * 150 + "]" * 150, "deep.json")
    assert not deep.manifests and "nested deeper than 100 levels" in deep.errors[0].details.reason


def test_a_fifo_named_on_the_command_line_is_an_error_not_a_hang(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "pods.yaml"
    os.mkfifo(fifo)
    out: list = []
    worker = threading.Thread(target=lambda: out.append(load_paths([str(fifo)])), daemon=True)
    worker.start()
    worker.join(5)
    if not out:  # unblock the reader so the test run does not keep a stuck thread
        open(fifo, "w").close()
    assert out, "reading a FIFO blocked"
    (err,) = out[0].errors
    assert err.details.reason == "not a regular file"


# What kubectl sends the API server for each plain scalar: sigs.k8s.io/yaml resolves it by
# go-yaml v2's resolve.go (Go's strconv.ParseInt(s, 0, 64) with "_" removed, its float pattern,
# its y/n/on/off table; timestamps and base 60 stay text), then carries it as JSON.
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0o0", 0),
        ("0O17", 15),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0B11", 3),
        ("-0b11", -3),
        ("+0", 0),
        ("0_0", 0),
        ("1_000", 1000),
        ("017", 15),
        ("0e0", 0),
        ("1e3", 1000),
        ("09", 9),
        ("0.0", 0),
        ("-0.0", 0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("y", True),
        ("Y", True),
        ("N", False),
        ("On", True),
        ("off", False),
        ("~", None),
        ("'0o0'", "0o0"),
        ('"y"', "y"),
        ("0o8", "0o8"),
        ("0x", "0x"),
        ("1e400", "1e400"),
        ("1:30", "1:30"),
        ("=", "="),
        ("2024-02-30", "2024-02-30"),
        ("2024-01-01", "2024-01-01"),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_scalars_read_as_kubectl_sends_them(text: str, value: object) -> None:
    loaded = load_text(f"kind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  v: {text}\n", "x")
    assert not loaded.errors
    got = loaded.manifests[0].obj["data"]["v"]
    assert got == value and type(got) is type(value), (text, got)


def test_mapping_keys_are_json_strings() -> None:
    loaded = load_text("kind: ConfigMap\nmetadata: {name: c}\ndata: {y: a, 1: b, 0x10: c}\n", "x")
    assert loaded.manifests[0].obj["data"] == {"true": "a", "1": "b", "16": "c"}


@pytest.mark.parametrize(
    "root",
    ["0", "0o0", "0O0", "0x0", "0X0", "0B0", "+0", "-0", "0_0", "00", "0e0", "0.0", "0E+0", ".0"],
)
def test_root_in_any_spelling_kubectl_reads_as_0_is_root(root: str) -> None:
    from stockade.compliance.workloads import BY_ID, run_check

    text = POD.format(name="p") + f"  securityContext:\n    runAsUser: {root}\n"
    obj = load_text(text, "x").manifests[0].obj
    assert run_check(BY_ID["pss.restricted.run_as_user"], obj) == [
        "spec.securityContext.runAsUser=0"
    ]


@pytest.mark.parametrize("yes", ["true", "y", "Y", "yes", "on", "ON"])
def test_true_in_any_spelling_kubectl_reads_as_true_is_true(yes: str) -> None:
    from stockade.compliance.workloads import BY_ID, run_check

    text = POD.format(name="p") + f"  hostPID: {yes}\n"
    obj = load_text(text, "x").manifests[0].obj
    assert run_check(BY_ID["pss.baseline.host_namespaces"], obj) == ["spec.hostPID=true"]
