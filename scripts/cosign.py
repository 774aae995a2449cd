#!/usr/bin/env python3
"""Cosign key-pair signatures of images in an OCI registry (Zot, or any registry with the
distribution API), in Cosign's own formats, for a machine without the `cosign` binary.

Why not cosign: no package registry reachable here ships it (Debian bookworm has no `cosign`,
PyPI's `sigstore` signs keyless only, and Debian's skopeo/podman are built with sigstore signing
removed: "Debian-local change: sigstore disabled"). The formats written here are Cosign's:

- keys: `cosign generate-key-pair`'s files. The private key is an ECDSA P-256 PKCS#8 key sealed
  with NaCl secretbox under a scrypt-derived key (N=32768, r=8, p=1), JSON in a PEM block
  `ENCRYPTED SIGSTORE PRIVATE KEY`; the public key is a PKIX PEM. `cosign sign --key` takes this
  private key and `cosign verify --key` the public one.
- signatures (Cosign's SIGNATURE_SPEC): the simple-signing payload
  `{"critical":{"identity":{"docker-reference":REPO},"image":{"docker-manifest-digest":DIGEST},
  "type":"cosign container image signature"},"optional":null}` as a layer of media type
  `application/vnd.dev.cosign.simplesigning.v1+json`, its ECDSA-SHA256 signature (base64 DER) in
  the layer annotation `dev.cosignproject.cosign/signature`, in an OCI manifest tagged
  `sha256-<hex>.sig` in the image's repository. The sigstore policy-controller (and
  `cosign verify --key`) verify exactly this.

Commands:
  keygen PREFIX                  write PREFIX.key (passphrase from COSIGN_PASSWORD) and PREFIX.pub
  sign --key FILE IMAGE@DIGEST   sign that manifest digest (tags are refused: sign what you pushed)
  verify --key FILE IMAGE[@DIGEST|:TAG]
                                 exit 0 when a signature by that key over the image's current
                                 digest is present, 1 otherwise (the reason on stderr)
Registries are reached over https, or http with --insecure (a local test registry).
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
# Cosign's older files say COSIGN; both are read.
PEM_TYPES = (PEM_TYPE, "ENCRYPTED COSIGN PRIVATE KEY")
SCRYPT = {"N": 32768, "r": 8, "p": 1}
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


class Failure(Exception):
    pass


def passphrase():
    value = os.environ.get("COSIGN_PASSWORD")
    if value is None:
        raise Failure("COSIGN_PASSWORD is not set: it holds the private key's passphrase")
    return value.encode()


def scrypt_key(password, salt, params):
    n, r, p = params["N"], params["r"], params["p"]
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=32)


def keygen(prefix):
    password = passphrase()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(32)
    nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = nacl.secret.SecretBox(scrypt_key(password, salt, SCRYPT)).encrypt(der, nonce)
    doc = {
        "kdf": {"name": "scrypt", "params": SCRYPT, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
    }
    body = base64.encodebytes(json.dumps(doc).encode()).decode()
    fd = os.open(prefix + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"-----BEGIN {PEM_TYPE}-----\n{body}-----END {PEM_TYPE}-----\n")
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(prefix + ".pub", "wb") as f:
        f.write(pub)


def load_private(path):
    text = open(path).read()
    for pem_type in PEM_TYPES:
        begin, end = f"-----BEGIN {pem_type}-----", f"-----END {pem_type}-----"
        if begin in text:
            inner = text.split(begin, 1)[1].split(end, 1)[0]
            doc = json.loads(base64.b64decode("".join(inner.split())))
            break
    else:
        raise Failure(f"{path}: not a Cosign private key (expected a PEM block {PEM_TYPE})")
    if doc["kdf"]["name"] != "scrypt" or doc["cipher"]["name"] != "nacl/secretbox":
        raise Failure(f"{path}: unsupported key encryption {doc['kdf']['name']}/{doc['cipher']['name']}")
    box = nacl.secret.SecretBox(
        scrypt_key(passphrase(), base64.b64decode(doc["kdf"]["salt"]), doc["kdf"]["params"])
    )
    try:
        der = box.decrypt(
            base64.b64decode(doc["ciphertext"]), base64.b64decode(doc["cipher"]["nonce"])
        )
    except nacl.exceptions.CryptoError:
        raise Failure(f"{path}: wrong passphrase (COSIGN_PASSWORD) for this key") from None
    return serialization.load_der_private_key(der, password=None)


def load_public(path):
    return serialization.load_pem_public_key(open(path, "rb").read())


class Reference:
    """host[:port]/repo[:tag][@sha256:…]"""

    def __init__(self, text, insecure):
        self.text = text
        rest = text
        self.digest = None
        if "@" in rest:
            rest, self.digest = rest.split("@", 1)
        self.tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, self.tag = rest.rsplit(":", 1)
        if "/" not in rest:
            raise Failure(f"{text}: expected REGISTRY/REPOSITORY[:TAG][@DIGEST]")
        self.registry, self.repository = rest.split("/", 1)
        self.name = rest
        self.base = ("http" if insecure else "https") + f"://{self.registry}/v2/{self.repository}"


def request(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except urllib.error.URLError as e:
        raise Failure(f"{url}: {e.reason}") from None


def get_manifest(ref, reference):
    status, headers, body = request("GET", f"{ref.base}/manifests/{reference}", headers={"Accept": ACCEPT})
    if status == 404:
        return None, None
    if status != 200:
        raise Failure(f"GET manifest {ref.name}:{reference}: HTTP {status}: {body[:200]!r}")
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


def push_blob(ref, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, _, _ = request("HEAD", f"{ref.base}/blobs/{digest}")
    if status == 200:
        return digest
    status, headers, body = request("POST", f"{ref.base}/blobs/uploads/")
    if status != 202:
        raise Failure(f"start blob upload to {ref.name}: HTTP {status}: {body[:200]!r}")
    location = headers.get("Location") or headers.get("location")
    if location.startswith("/"):
        location = ref.base.split("/v2/", 1)[0] + location
    sep = "&" if "?" in location else "?"
    status, _, body = request(
        "PUT",
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if status != 201:
        raise Failure(f"upload blob to {ref.name}: HTTP {status}: {body[:200]!r}")
    return digest


def signature_tag(digest):
    algo, hexpart = digest.split(":", 1)
    return f"{algo}-{hexpart}.sig"


def payload_for(ref, digest):
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": ref.name},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def sign(key_path, image, insecure):
    ref = Reference(image, insecure)
    if not ref.digest:
        raise Failure(f"{image}: sign by digest (IMAGE@sha256:…), the digest the push printed")
    body, digest = get_manifest(ref, ref.digest)
    if body is None or digest != ref.digest:
        raise Failure(f"{image}: no manifest with that digest in the registry")
    key = load_private(key_path)
    payload = payload_for(ref, digest)
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    payload_digest = push_blob(ref, payload)
    tag = signature_tag(digest)
    existing, _ = get_manifest(ref, tag)
    layers = json.loads(existing)["layers"] if existing else []
    layers = [l for l in layers if l.get("annotations", {}).get(SIGNATURE_ANNOTATION) != signature]
    layers.append(
        {
            "mediaType": SIMPLESIGNING,
            "size": len(payload),
            "digest": payload_digest,
            "annotations": {SIGNATURE_ANNOTATION: signature},
        }
    )
    config = json.dumps(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
        },
        separators=(",", ":"),
    ).encode()
    config_digest = push_blob(ref, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    status, _, body = request(
        "PUT", f"{ref.base}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    if status != 201:
        raise Failure(f"push signature {ref.name}:{tag}: HTTP {status}: {body[:200]!r}")
    print(f"signed {ref.name}@{digest} ({ref.name}:{tag})")


def verify(key_path, image, insecure):
    ref = Reference(image, insecure)
    body, digest = get_manifest(ref, ref.digest or ref.tag or "latest")
    if body is None:
        raise Failure(f"{image}: no such image")
    if ref.digest and digest != ref.digest:
        raise Failure(f"{image}: the registry's manifest has digest {digest}")
    sig_manifest, _ = get_manifest(ref, signature_tag(digest))
    if sig_manifest is None:
        raise Failure(f"{ref.name}@{digest}: no signatures ({signature_tag(digest)} is absent)")
    key = load_public(key_path)
    reasons = []
    for layer in json.loads(sig_manifest).get("layers", []):
        if layer.get("mediaType") != SIMPLESIGNING:
            continue
        status, _, payload = request("GET", f"{ref.base}/blobs/{layer['digest']}")
        if status != 200 or "sha256:" + hashlib.sha256(payload).hexdigest() != layer["digest"]:
            reasons.append(f"payload {layer['digest']} missing or not matching its digest")
            continue
        try:
            key.verify(
                base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION]),
                payload,
                ec.ECDSA(hashes.SHA256()),
            )
        except (InvalidSignature, KeyError, ValueError):
            reasons.append(f"payload {layer['digest']}: signature not made by this key")
            continue
        critical = json.loads(payload).get("critical", {})
        if critical.get("type") != "cosign container image signature":
            reasons.append(f"payload {layer['digest']}: not a cosign container image signature")
        elif critical.get("image", {}).get("docker-manifest-digest") != digest:
            reasons.append(f"payload {layer['digest']}: signs another digest")
        elif critical.get("identity", {}).get("docker-reference") != ref.name:
            reasons.append(f"payload {layer['digest']}: signs another repository")
        else:
            print(f"verified {ref.name}@{digest}")
            return
    raise Failure(f"{ref.name}@{digest}: no valid signature by {key_path}: " + "; ".join(reasons or ["no signature layers"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("keygen")
    p.add_argument("prefix")
    for name in ("sign", "verify"):
        p = sub.add_parser(name)
        p.add_argument("--key", required=True)
        p.add_argument("--insecure", action="store_true", help="http, for a local test registry")
        p.add_argument("image")
    args = parser.parse_args()
    try:
        if args.command == "keygen":
            keygen(args.prefix)
        elif args.command == "sign":
            sign(args.key, args.image, args.insecure)
        else:
            verify(args.key, args.image, args.insecure)
    except Failure as e:
        print(f"cosign.py {args.command}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
