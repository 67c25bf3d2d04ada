"""Validates Kubernetes objects against their schemas, strictly (unknown
fields are errors).

Reads one JSON object per line from the file named by the last argument;
core kinds are checked with kubernetes-validate against each Kubernetes
version given with -k, ServiceMonitors against the prometheus-operator
models of cloudcoil-models-prometheus-operator (generated from the
operator's CRDs; the version is pinned in tests/requirements.txt). Any other
kind is an error: a manifest this script cannot check must not pass.
Prints one `ok <version> <kind>/<name>` line per check, or a `FAIL` line
per invalid object, and exits 1 when any object failed (with
--expect-invalid: unless every object failed).

Used by tests/tests/deploy_k8s.rs; run from the workspace's .venv.
"""

import argparse
import functools
import json
import sys

import kubernetes_validate.utils as kv

# validate() reads and parses the schema files (megabytes of JSON) on every
# call; they do not change within a run.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)


def check_service_monitor(obj):
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    model = ServiceMonitor.model_validate(obj)
    # The models ignore unknown fields; a field that does not survive the
    # round trip is one the CRD does not have.
    back = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    missing = unknown_fields(obj, back, "")
    if missing:
        raise ValueError("fields not in the ServiceMonitor CRD: " + ", ".join(missing))


def unknown_fields(given, kept, path):
    out = []
    if isinstance(given, dict):
        for k, v in given.items():
            p = f"{path}.{k}" if path else k
            if not isinstance(kept, dict) or k not in kept:
                out.append(p)
            else:
                out.extend(unknown_fields(v, kept[k], p))
    elif isinstance(given, list):
        for i, v in enumerate(given):
            if not isinstance(kept, list) or i >= len(kept):
                out.append(f"{path}[{i}]")
            else:
                out.extend(unknown_fields(v, kept[i], f"{path}[{i}]"))
    return out


def check(obj, versions):
    """Validates one object; returns the lines to print (FAIL lines on error)."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        if obj.get("apiVersion") == "monitoring.coreos.com/v1" and obj.get("kind") == "ServiceMonitor":
            check_service_monitor(obj)
            return [f"ok prometheus-operator {name}"]
        return [f"ok {kv.validate(obj, v, strict=True)} {name}" for v in versions]
    except kv.SchemaNotFoundError as e:
        return [f"FAIL {name}: no schema: {e.message}"]
    except kv.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return [f"FAIL {name} (Kubernetes {e.version}): {path}: {e.message}"]
    except Exception as e:  # a model error, an unsupported version
        return [f"FAIL {name}: {type(e).__name__}: {e}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", "--kubernetes-version", action="append", required=True)
    ap.add_argument(
        "--expect-invalid",
        action="store_true",
        help="succeed only if every object fails (to show the checks can fail)",
    )
    ap.add_argument("file")
    args = ap.parse_args()
    with open(args.file) as f:
        objects = [json.loads(line) for line in f if line.strip()]
    failed = 0
    for obj in objects:
        lines = check(obj, args.kubernetes_version)
        print("\n".join(lines))
        failed += any(line.startswith("FAIL") for line in lines)
    if args.expect_invalid:
        return 0 if failed == len(objects) else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
