"""Offline validation of Kubernetes manifests, as an API server would take them.

Run by tests/tests/deploy_manifests.rs (with the interpreter SMI_PYTHON names; scripts/test
installs kubernetes-validate and jsonschema into target/test-venv):

    validate.py --crds DIR [--kubernetes-version 1.37.0] [--unknown-fields strict|prune]
                [--only-smi] FILE...

Every YAML document of every FILE is checked and reported as one JSON line
{"file", "document" (1-based), "apiVersion", "kind", "name", "status", "errors", "pruned"},
status "ok", "invalid" or "skipped" (a document without apiVersion or kind, or one --only-smi
leaves out). Exit status 0 when every document is ok or skipped, 1 otherwise, 2 for bad usage.

- Built-in kinds: kubernetes-validate's bundled OpenAPI schemas of that Kubernetes version, in
  strict mode (unknown fields are errors). A kind it has no schema for is invalid.
- CustomResourceDefinitions: the same, plus what the API server checks beyond the OpenAPI
  schema: a structural openAPIV3Schema in every version, the name `<plural>.<group>`, every
  version served, exactly one storage version and it the newest, conversion None.
- SMI objects (access, specs, split .smi-spec.io): against the openAPIV3Schema of the matching
  version of the CRDs in --crds, translated to JSON Schema (x-kubernetes-int-or-string becomes
  anyOf [integer, string], the other x-kubernetes-* keys are dropped; the one CEL form the CRDs
  use, `!has(self.f)`, becomes `not: {required: [f]}`, and any other rule is an error, so no rule
  is skipped silently); metadata against ObjectMeta. Fields the schema does not define are
  errors with --unknown-fields strict (kubectl's default field validation) and are pruned
  before validating with --unknown-fields prune (what the API server does for a client that does
  not ask for strict validation), reported in "pruned".
"""

import argparse
import glob
import json
import os
import re
import sys

try:
    import jsonschema
    import kubernetes_validate.utils as kv_utils
    import referencing
    import yaml
except ImportError as e:
    # Exit 2, not the 1 of an invalid document (nor Python's 1 for an uncaught exception).
    print(f"{sys.executable}: {e}: pip install kubernetes-validate jsonschema", file=sys.stderr)
    sys.exit(2)

SMI_GROUPS = ("access.smi-spec.io", "specs.smi-spec.io", "split.smi-spec.io")
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Keywords that apiextensions.k8s.io/v1 refuses in an openAPIV3Schema.
FORBIDDEN = ("$ref", "$schema", "definitions", "dependencies", "patternProperties",
             "additionalItems", "id")
# What a logical junctor (anyOf, allOf, oneOf, not) may not set in a structural schema.
NOT_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")
HAS_RULE = re.compile(r"^!\s*has\(\s*self\.([A-Za-z_][A-Za-z0-9_]*)\s*\)$")


def documents(path):
    with open(path) as f:
        return list(yaml.safe_load_all(f))


def dotted(path):
    """A jsonschema error path as kubectl writes fields: spec.backends[0].weight."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(root)"


def version_key(version):
    """Kubernetes' version priority: GA above beta above alpha, then by number."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (-1, 0, 0)
    stability = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (stability, int(m.group(1)), int(m.group(3) or 0))


# === Structural schemas ===

def is_int_or_string_any_of(node):
    return node.get("anyOf") in ([{"type": "integer"}, {"type": "string"}],
                                 [{"type": "string"}, {"type": "integer"}])


def structural_errors(node, path, in_junctor=False):
    errors = []
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    for key in FORBIDDEN:
        if key in node:
            errors.append(f"{path}: {key} is not allowed in a CRD schema")
    if node.get("uniqueItems") is True:
        errors.append(f"{path}: uniqueItems: true is not allowed in a CRD schema")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if in_junctor:
        for key in NOT_IN_JUNCTORS:
            if key in node:
                errors.append(f"{path}: {key} inside a logical junctor is not structural")
    else:
        if int_or_string and "type" in node:
            errors.append(f"{path}: x-kubernetes-int-or-string with a type")
        if not node.get("type") and not int_or_string and not preserve:
            errors.append(f"{path}: no type (a structural schema types every field)")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: both properties and additionalProperties")
    if node.get("type") == "array" and not isinstance(node.get("items"), dict):
        errors.append(f"{path}: an array without one items schema")
    for name, child in node.get("properties", {}).items():
        errors += structural_errors(child, f"{path}.properties.{name}", in_junctor)
    if isinstance(node.get("items"), dict):
        errors += structural_errors(node["items"], f"{path}.items", in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        errors += structural_errors(node["additionalProperties"],
                                    f"{path}.additionalProperties", in_junctor)
    for junctor in ("anyOf", "allOf", "oneOf"):
        if junctor in node and not (junctor == "anyOf" and int_or_string
                                    and is_int_or_string_any_of(node)):
            for i, child in enumerate(node[junctor]):
                errors += structural_errors(child, f"{path}.{junctor}[{i}]", True)
    if "not" in node:
        errors += structural_errors(node["not"], f"{path}.not", True)
    for i, rule in enumerate(node.get("x-kubernetes-validations", [])):
        if not HAS_RULE.match(rule.get("rule", "")):
            errors.append(f"{path}.x-kubernetes-validations[{i}]: rule {rule.get('rule')!r} "
                          "cannot be checked offline; teach validate.py its JSON Schema form")
    return errors


def crd_errors(crd):
    errors = []
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    group = spec.get("group", "")
    expected = f"{names.get('plural')}.{group}"
    if crd.get("metadata", {}).get("name") != expected:
        errors.append(f"metadata.name: must be {expected}")
    if (spec.get("conversion") or {}).get("strategy", "None") != "None":
        errors.append("spec.conversion.strategy: expected None")
    versions = spec.get("versions", [])
    for i, version in enumerate(versions):
        if version.get("served") is not True:
            errors.append(f"spec.versions[{i}] ({version.get('name')}): not served")
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            errors.append(f"spec.versions[{i}] ({version.get('name')}): no openAPIV3Schema")
            continue
        where = f"spec.versions[{i}].schema.openAPIV3Schema"
        if schema.get("type") != "object":
            errors.append(f"{where}: the root must be type: object")
        errors += structural_errors(schema, where)
    storage = [v.get("name") for v in versions if v.get("storage") is True]
    if len(storage) != 1:
        errors.append(f"spec.versions: {len(storage)} storage versions, must be exactly one")
    elif versions:
        newest = max((v.get("name", "") for v in versions), key=version_key)
        if storage[0] != newest:
            errors.append(f"spec.versions: storage version {storage[0]} is not the newest, {newest}")
    return errors


# === CRD schemas as JSON Schema ===

def to_json_schema(node):
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(child) for name, child in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(child) for child in value]
        elif key == "x-kubernetes-validations":
            # `$comment` carries the rule's message to the error (see Validator.smi).
            out.setdefault("allOf", []).extend(
                {"not": {"required": [HAS_RULE.match(rule["rule"]).group(1)]},
                 "$comment": rule.get("message", rule["rule"])} for rule in value)
        elif key == "x-kubernetes-int-or-string":
            if value is True and "anyOf" not in node:
                out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif key.startswith("x-kubernetes-") or key == "nullable":
            pass
        else:
            out[key] = value
    if node.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def unknown_fields(value, schema, path, root):
    """The paths in `value` that `schema` does not define (what the API server prunes)."""
    found = []
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return found
    if isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            if key in properties:
                found += unknown_fields(child, properties[key], child_path, False)
            elif isinstance(extra, dict):
                found += unknown_fields(child, extra, child_path, False)
            elif extra is not True:
                found.append(child_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]", False)
    return found


def prune(value, paths):
    for path in sorted(paths, key=len, reverse=True):
        steps = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        node = value
        for step in steps[:-1]:
            node = node[int(step[1:-1])] if step.startswith("[") else node[step]
        del node[steps[-1]]


class Validator:
    def __init__(self, kubernetes_version, strict_fields):
        self.kubernetes_version = kubernetes_version
        self.strict_fields = strict_fields
        self.crds = {}  # (group, kind) -> {version name: version}
        version = [v for v in kv_utils.all_versions()
                   if kv_utils.major_minor(v) <= kv_utils.major_minor(kubernetes_version)][-1]
        definitions = kv_utils.schema_contents(
            f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
        self.registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()

    def add_crds(self, directory):
        for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
            for doc in documents(path):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    spec = doc["spec"]
                    self.crds[(spec["group"], spec["names"]["kind"])] = {
                        v["name"]: v for v in spec["versions"]}

    def builtin(self, doc):
        try:
            kv_utils.validate(doc, self.kubernetes_version, strict=True)
        except kv_utils.ValidationError as e:
            return [f"{dotted(e.path)}: {e.message}"]
        except kv_utils.SchemaNotFoundError as e:
            return [e.message]
        errors = crd_errors(doc) if doc.get("kind") == "CustomResourceDefinition" else []
        return errors

    def smi(self, doc):
        group, _, version = doc["apiVersion"].partition("/")
        versions = self.crds.get((group, doc["kind"]))
        if versions is None or version not in versions:
            return [f"no CRD serves {doc['kind']} in {doc['apiVersion']}"], []
        if not versions[version].get("served"):
            return [f"{doc['kind']} {doc['apiVersion']} is not served"], []
        crd_schema = versions[version]["schema"]["openAPIV3Schema"]
        unknown = unknown_fields(doc, crd_schema, "", True)
        if self.strict_fields:
            errors = [f"{path}: unknown field" for path in unknown]
            pruned = []
        else:
            errors = []
            pruned = unknown
            prune(doc, unknown)
        schema = to_json_schema(crd_schema)
        schema.setdefault("properties", {})["metadata"] = {"$ref": OBJECT_META}
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
            where = dotted(error.path)
            message = error.message
            if error.validator == "not" and "$comment" in error.schema:
                message = error.schema["$comment"]
            errors.append(f"{where}: {message}")
        return errors, pruned

    def document(self, doc, only_smi):
        """(status, errors, pruned) of one document."""
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            return "skipped", ["no apiVersion or kind: not something kubectl can apply"], []
        is_smi = doc["apiVersion"].partition("/")[0] in SMI_GROUPS
        if only_smi and not is_smi:
            return "skipped", [], []
        if is_smi:
            errors, pruned = self.smi(doc)
        else:
            errors, pruned = self.builtin(doc), []
        return ("invalid" if errors else "ok"), errors, pruned


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crds", required=True, help="directory of the SMI CRD files")
    parser.add_argument("--kubernetes-version", default="1.37.0")
    parser.add_argument("--unknown-fields", choices=("strict", "prune"), default="strict")
    parser.add_argument("--only-smi", action="store_true",
                        help="skip documents outside the SMI groups")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    validator = Validator(args.kubernetes_version, args.unknown_fields == "strict")
    validator.add_crds(args.crds)
    if not validator.crds:
        print(f"no CustomResourceDefinitions in {args.crds}", file=sys.stderr)
        return 2
    failed = False
    for path in args.files:
        for i, doc in enumerate(documents(path), start=1):
            if doc is None:
                continue
            status, errors, pruned = validator.document(doc, args.only_smi)
            failed |= status == "invalid"
            meta = (doc.get("metadata") or {}) if isinstance(doc, dict) else {}
            print(json.dumps({
                "file": path,
                "document": i,
                "apiVersion": doc.get("apiVersion") if isinstance(doc, dict) else None,
                "kind": doc.get("kind") if isinstance(doc, dict) else None,
                "name": meta.get("name"),
                "status": status,
                "errors": errors,
                "pruned": pruned,
            }))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a crash is not a verdict: exit 2, as for bad usage
        import traceback
        traceback.print_exc()
        sys.exit(2)
