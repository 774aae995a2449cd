//! Cosign key-pair signatures of container images in an OCI registry (Zot, or any registry with
//! the distribution API), through the `sigstore` crate: no format is written by hand here.
//!
//! - `keygen PREFIX`: `cosign generate-key-pair`'s files, PREFIX.key (ECDSA P-256, encrypted
//!   with the passphrase in COSIGN_PASSWORD: scrypt + NaCl secretbox, PEM `ENCRYPTED SIGSTORE
//!   PRIVATE KEY`) and PREFIX.pub (PKIX PEM).
//! - `sign --key FILE IMAGE@DIGEST`: the simple-signing payload naming that manifest digest,
//!   signed with the key, pushed as a layer of the `sha256-<hex>.sig` manifest in the image's
//!   repository (earlier signatures there are kept), as `cosign sign --key` does.
//! - `verify --key FILE IMAGE[@DIGEST|:TAG]`: exit 0 when a signature made by that public key
//!   over the image's current digest is attached, 1 otherwise (the reason on stderr), as
//!   `cosign verify --key` and the sigstore policy-controller check it.
//!
//! Registry credentials: REGISTRY_USERNAME and REGISTRY_PASSWORD (HTTP basic), else anonymous.
//! `--insecure`: plain http (a local test registry).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{
    ClientBuilder, Constraint, CosignCapabilities, SignatureLayer, verify_constraints,
};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(about = "Cosign key-pair image signatures (sigstore crate)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write PREFIX.key (secret, passphrase from COSIGN_PASSWORD) and PREFIX.pub.
    Keygen { prefix: PathBuf },
    /// Sign IMAGE@sha256:… (tags are refused: sign the digest you pushed).
    Sign {
        /// Cosign private key (PEM, encrypted with COSIGN_PASSWORD).
        #[arg(long)]
        key: PathBuf,
        /// Plain http (a local test registry).
        #[arg(long)]
        insecure: bool,
        image: String,
    },
    /// Check that IMAGE's current digest carries a signature made by the public key.
    Verify {
        /// Cosign public key (PKIX PEM).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        insecure: bool,
        image: String,
    },
}

const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (name, result) = match cli.command {
        Command::Keygen { prefix } => ("keygen", keygen(&prefix)),
        Command::Sign {
            key,
            insecure,
            image,
        } => ("sign", sign(&key, &image, insecure).await),
        Command::Verify {
            key,
            insecure,
            image,
        } => ("verify", verify(&key, &image, insecure).await),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("imagesign {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn passphrase() -> Result<Zeroizing<Vec<u8>>, String> {
    match std::env::var("COSIGN_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(Zeroizing::new(p.into_bytes())),
        _ => Err(
            "COSIGN_PASSWORD is not set: it holds the private key's passphrase (not empty)".into(),
        ),
    }
}

fn read(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

fn keygen(prefix: &Path) -> Result<String, String> {
    let password = passphrase()?;
    let pair = SCHEME
        .create_signer()
        .and_then(|s| s.to_sigstore_keypair())
        .map_err(|e| format!("cannot make a key pair: {e}"))?;
    let private = pair
        .private_key_to_encrypted_pem(&password)
        .map_err(|e| format!("cannot encrypt the private key: {e}"))?;
    let public = pair
        .public_key_to_pem()
        .map_err(|e| format!("cannot encode the public key: {e}"))?;
    let key_path = with_suffix(prefix, "key");
    let pub_path = with_suffix(prefix, "pub");
    // The secret half: created new (never over an existing key), readable by its owner only.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(|e| format!("cannot create {}: {e}", key_path.display()))?
    };
    std::io::Write::write_all(&mut file, private.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    std::fs::write(&pub_path, public)
        .map_err(|e| format!("cannot write {}: {e}", pub_path.display()))?;
    Ok(format!(
        "wrote {} and {}",
        key_path.display(),
        pub_path.display()
    ))
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn reference(image: &str) -> Result<OciReference, String> {
    image.parse::<OciReference>().map_err(|e| {
        format!("{image}: not an image reference (REGISTRY/REPOSITORY[:TAG][@sha256:…]): {e}")
    })
}

fn auth() -> Auth {
    match (
        std::env::var("REGISTRY_USERNAME"),
        std::env::var("REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) if !user.is_empty() => Auth::Basic(user, password),
        _ => Auth::Anonymous,
    }
}

fn client(insecure: bool) -> Result<sigstore::cosign::Client, String> {
    let config = ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    };
    ClientBuilder::default()
        .with_oci_client_config(config)
        .build()
        .map_err(|e| format!("cannot build the registry client: {e}"))
}

/// `registry/repository` of a reference, without tag or digest.
fn repository(r: &OciReference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

async fn sign(key: &Path, image: &str, insecure: bool) -> Result<String, String> {
    let image_ref = reference(image)?;
    let Some(digest) = image_ref.digest().map(str::to_string) else {
        return Err(format!(
            "{image}: sign by digest (IMAGE@sha256:…), the digest the push printed"
        ));
    };
    let signer = PrivateKeySigner::new_with_raw(read(key, "private key")?, passphrase()?, &SCHEME)
        .map_err(|e| {
            format!(
                "{}: not a Cosign private key this passphrase (COSIGN_PASSWORD) opens: {e}",
                key.display()
            )
        })?;
    let auth = auth();
    let mut client = client(insecure)?;
    let (signature_ref, current) = client
        .triangulate(&image_ref, &auth)
        .await
        .map_err(|e| format!("{image}: cannot read the manifest from the registry: {e}"))?;
    if current != digest {
        return Err(format!(
            "{image}: the registry's manifest has digest {current}"
        ));
    }
    // Earlier signatures on this digest stay: cosign appends to the `.sig` manifest. The crate
    // pushes a layer's payload as it serialises it, so only a key-pair signature whose payload
    // serialises back to the bytes that were signed can be carried over; another kind (a Rekor
    // bundle or certificate in its annotations) would lose them, so signing stops instead.
    // Sigstore bundles found through the referrers API live elsewhere and are left alone.
    let mut layers: Vec<SignatureLayer> = Vec::new();
    let existing = client
        .trusted_signature_layers(&auth, &image_ref)
        .await
        .unwrap_or_default();
    for l in existing {
        match &l.bundle {
            Some(sigstore::cosign::bundle_content::BundleContent::SigstoreBundle(_)) => continue,
            Some(_) => {
                return Err(format!(
                    "{signature_ref} holds a signature with a Rekor bundle, which this tool \
                     cannot carry over; sign with cosign, or delete that tag first"
                ));
            }
            None => {}
        }
        let reserialised = serde_json_bytes(&l)?;
        if l.signature.is_none() || l.certificate_signature.is_some() || reserialised != l.raw_data
        {
            return Err(format!(
                "{signature_ref} holds a signature this tool cannot carry over unchanged; sign \
                 with cosign, or delete that tag first"
            ));
        }
        layers.push(l);
    }
    let mut layer = SignatureLayer::new_unsigned(&image_ref, &digest)
        .map_err(|e| format!("{image}: cannot make the payload: {e}"))?;
    // The crate names the reference as given (with its digest); `cosign sign` names the
    // repository, which is what `sigstoreSigned` policies with `matchRepository` compare.
    layer.simple_signing.critical.identity.docker_reference = repository(&image_ref);
    match signer.add_constraint(&mut layer) {
        Ok(true) => {}
        Ok(false) => return Err(format!("{image}: the payload was not signed")),
        Err(e) => return Err(format!("{image}: signing failed: {e}")),
    }
    layers.retain(|l| l.signature != layer.signature);
    layers.push(layer);
    client
        .push_signature(None, &auth, &signature_ref, layers)
        .await
        .map_err(|e| format!("cannot push the signature to {signature_ref}: {e}"))?;
    Ok(format!(
        "signed {}@{digest} ({signature_ref})",
        repository(&image_ref)
    ))
}

async fn verify(key: &Path, image: &str, insecure: bool) -> Result<String, String> {
    let image_ref = reference(image)?;
    let verifier = PublicKeyVerifier::new(&read(key, "public key")?, &SCHEME)
        .map_err(|e| format!("{}: not a P-256 public key (PEM): {e}", key.display()))?;
    let auth = auth();
    let mut client = client(insecure)?;
    let (signature_ref, digest) = client
        .triangulate(&image_ref, &auth)
        .await
        .map_err(|e| format!("{image}: no such image in the registry: {e}"))?;
    if let Some(wanted) = image_ref.digest()
        && wanted != digest
    {
        return Err(format!(
            "{image}: the registry's manifest has digest {digest}"
        ));
    }
    let name = format!("{}@{digest}", repository(&image_ref));
    let layers = client
        .trusted_signature_layers(&auth, &image_ref)
        .await
        .map_err(|e| format!("{name}: cannot read its signatures: {e}"))?;
    if layers.is_empty() {
        return Err(format!(
            "{name}: no signatures ({signature_ref} is absent or holds none for this digest)"
        ));
    }
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).map_err(|_| {
        format!(
            "{name}: {} signature(s) attached, none made by this key ({})",
            layers.len(),
            key.display()
        )
    })?;
    Ok(format!("verified {name}"))
}

/// The payload bytes the crate would push for this layer.
fn serde_json_bytes(layer: &SignatureLayer) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&layer.simple_signing)
        .map_err(|e| format!("cannot serialise a signature payload: {e}"))
}
