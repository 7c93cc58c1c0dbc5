"""Unit tests of the registry's pieces: names, manifests, tokens, name mapping."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from graft.accounts.models import Principal
from graft.accounts.scopes import Scope
from graft.ecosystems.oci import errors
from graft.ecosystems.oci.manifests import MAX_MANIFEST_BYTES, parse
from graft.ecosystems.oci.names import valid_name, valid_tag
from graft.ecosystems.oci.routes import patched_tag
from graft.ecosystems.oci.tokens import TokenSigner, allowed_actions, parse_scope
from graft.ecosystems.oci.upstream import map_name
from graft.upstream.config import UpstreamConfig
from tests.fixtures.oci import OCI_MANIFEST, make_image, make_index, sha256


def principal(*scopes: Scope) -> Principal:
    return Principal(1, "acme", 2, "ci", "service", False, 3, frozenset(scopes), None)


@pytest.mark.parametrize(
    "name", ["python", "library/python", "org/team/app", "a.b_c__d-e--f", "a" * 255]
)
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize(
    "name", ["", "Python", "a/../b", "a//b", "-a", "a-", "a/", "a..b", "a___b", "a" * 256, "a b"]
)
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)


def test_tags() -> None:
    assert valid_tag("3.12-slim") and valid_tag("_x") and valid_tag("a" * 128)
    assert not valid_tag("-x") and not valid_tag(".x") and not valid_tag("a" * 129)
    assert not valid_tag("a:b") and not valid_tag("")


def test_patched_tag_convention() -> None:
    assert patched_tag("3.12-slim-graft", "graft")
    assert patched_tag("3.12-slim-graft.2", "graft")
    assert not patched_tag("3.12-slim", "graft")
    assert not patched_tag("-graft", "graft")
    assert not patched_tag("3.12-graftx", "graft")


def test_parse_image_manifest() -> None:
    img = make_image("x", layer_sizes=(10, 20))
    parsed = parse(img.manifest, OCI_MANIFEST)
    assert parsed.media_type == OCI_MANIFEST
    assert [d.digest for d in parsed.blobs] == list(img.blobs)
    assert parsed.artifact_type == "application/vnd.oci.image.config.v1+json"  # from config
    assert parsed.subject is None


def test_parse_index_and_subject() -> None:
    images = [make_image("a"), make_image("b", arch="arm64")]
    parsed = parse(make_index(images), "")  # no Content-Type: the declared mediaType counts
    assert [d.digest for d in parsed.manifests] == [i.digest for i in images]
    doc = json.loads(images[0].manifest)
    doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": sha256(b"s"), "size": 1}
    doc["artifactType"] = "application/vnd.example"
    parsed = parse(json.dumps(doc).encode(), OCI_MANIFEST)
    assert parsed.subject == sha256(b"s") and parsed.artifact_type == "application/vnd.example"


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"{nope", OCI_MANIFEST, "MANIFEST_INVALID"),
        (b"[]", OCI_MANIFEST, "MANIFEST_INVALID"),
        (b'{"schemaVersion":2}', "application/x-unknown", "MANIFEST_INVALID"),
        (b'{"schemaVersion":1,"layers":[]}', OCI_MANIFEST, "MANIFEST_INVALID"),
        (
            b'{"schemaVersion":2,"config":{"digest":"sha256:x","size":1,"mediaType":"a"},'
            b'"layers":[]}',
            OCI_MANIFEST,
            "MANIFEST_INVALID",
        ),
        (
            b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
            b'"manifests":[]}',
            OCI_MANIFEST,
            "MANIFEST_INVALID",
        ),
        (b" " * (MAX_MANIFEST_BYTES + 1), OCI_MANIFEST, "SIZE_INVALID"),
    ],
)
def test_parse_rejects(body: bytes, content_type: str, code: str) -> None:
    with pytest.raises(errors.OCIError) as info:
        parse(body, content_type)
    assert info.value.code == code


def test_scopes_are_cut_to_the_graft_token() -> None:
    assert parse_scope("repository:team/app:pull,push") == (
        "repository",
        "team/app",
        ("pull", "push"),
    )
    assert parse_scope("repository:host:5000/x:pull") == ("repository", "host:5000/x", ("pull",))
    assert parse_scope("nonsense") is None
    read, publish = principal(Scope.READ), principal(Scope.READ, Scope.PUBLISH)
    assert allowed_actions(read, "repository", ("pull", "push")) == {"pull"}
    assert allowed_actions(publish, "repository", ("pull", "push", "delete")) == {
        "pull",
        "push",
        "delete",
    }
    assert allowed_actions(read, "registry", ("*",)) == {"*"}
    assert allowed_actions(read, "other", ("pull",)) == frozenset()


def test_token_roundtrip_tamper_and_expiry() -> None:
    signer = TokenSigner(b"k" * 32, seconds=60)
    token, lifetime = signer.issue(principal(Scope.READ), {"team/app": frozenset({"pull"})})
    assert 0 < lifetime <= 60
    grant = signer.verify(token)
    assert grant is not None and grant.allows("team/app", "pull")
    assert not grant.allows("team/app", "push") and not grant.allows("other", "pull")
    assert grant.principal.org_id == 1 and grant.principal.scopes == {Scope.READ}
    head, payload, sig = token.split(".")
    assert signer.verify(f"{head}.{payload}.{sig[:-2]}AA") is None
    assert TokenSigner(b"x" * 32).verify(token) is None
    assert signer.verify("not-a-token") is None
    expired = TokenSigner(b"k" * 32, seconds=-1).issue(principal(Scope.READ), {})[0]
    assert signer.verify(expired) is None


def test_token_never_outlives_the_graft_token() -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    p = Principal(1, "acme", 2, "ci", "service", False, 3, frozenset({Scope.READ}), soon)
    _, lifetime = TokenSigner(b"k" * 32, seconds=300).issue(p, {})
    assert lifetime <= 6
    assert time.time() < soon.timestamp()


def upstream(name: str, namespaces: list[str], priority: int = 100) -> UpstreamConfig:
    return UpstreamConfig(
        ecosystem="oci",
        name=name,
        url="https://registry.example.com",
        priority=priority,
        namespaces=namespaces,
    )


def test_name_mapping() -> None:
    hub = upstream("hub", ["*=library/*", "library/*"])
    quay = upstream("quay", ["quay/*=*"])
    ups = [quay, hub]
    assert map_name(ups, "python") == (hub, "library/python")
    assert map_name(ups, "library/python") == (hub, "library/python")
    assert map_name(ups, "quay/org/app") == (quay, "org/app")
    assert map_name(ups, "team/app") is None
    everything = upstream("all", [])
    assert map_name([everything], "team/app") == (everything, "team/app")
