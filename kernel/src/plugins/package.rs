//! One-file plugin packages: the manifest, the component and the
//! publisher's Ed25519 signature over both.
//!
//! The file layout (`.llpkg`), all lengths little-endian `u32`:
//!
//! ```text
//! "LLPKG\0\x01\n"                      8 bytes: magic and format version 1
//! len | plugin.toml                    UTF-8 TOML
//! len | component                      the WebAssembly component
//! len | signature                      UTF-8 TOML (`publisher`, `signature`
//!                                      as hex), empty when unsigned
//! ```
//!
//! The signature is over [`digest`]: SHA-256 of a domain tag and the SHA-256
//! of the manifest and of the component, so neither can be swapped alone.
//! Building a package from a crate is `build.rs`.

use super::manifest::{self, Manifest};
use crate::error::{Error, Result};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::Path;

const MAGIC: &[u8; 8] = b"LLPKG\0\x01\n";
const MAX_MANIFEST: usize = 1 << 20;
const MAX_COMPONENT: usize = 64 << 20;
const MAX_SIGNATURE: usize = 4 << 10;

/// A decoded package; the manifest has passed [`manifest::parse`].
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest as shipped (what the signature covers).
    pub manifest_text: String,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The publisher's signature, if signed.
    pub signature: Option<PackageSignature>,
}

/// A signature block.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    /// The publisher whose key signed (must equal the manifest's).
    pub publisher: String,
    /// The Ed25519 signature over [`digest`], hex.
    pub signature: String,
}

/// What signing the package proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Signed by a key in the trust store.
    Signed,
    /// Accepted unsigned or from an unknown publisher in development mode.
    Development,
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::invalid("package", msg)
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a publisher signs: a domain tag, then the hashes of the manifest
/// and the component.
pub fn digest(manifest: &[u8], component: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lifelong-package-v1\n");
    h.update(Sha256::digest(manifest));
    h.update(Sha256::digest(component));
    h.finalize().into()
}

impl Package {
    /// A package from a manifest and a component (unsigned).
    pub fn new(manifest_text: String, component: Vec<u8>) -> Result<Package> {
        let manifest = manifest::parse(&manifest_text)
            .map_err(|e| Error::invalid("manifest", e.to_string()))?;
        Ok(Package {
            manifest_text,
            manifest,
            component,
            signature: None,
        })
    }

    /// Decode a package file, checking its layout and its manifest.
    pub fn decode(bytes: &[u8]) -> Result<Package> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| invalid("not a Lifelong plugin package (bad magic bytes)"))?;
        let (manifest, rest) = section(rest, "manifest", MAX_MANIFEST)?;
        let (component, rest) = section(rest, "component", MAX_COMPONENT)?;
        let (signature, rest) = section(rest, "signature", MAX_SIGNATURE)?;
        if !rest.is_empty() {
            return Err(invalid(format!(
                "{} unexpected bytes after the signature section",
                rest.len()
            )));
        }
        let manifest_text = String::from_utf8(manifest.to_vec())
            .map_err(|_| Error::invalid("manifest", "plugin.toml is not UTF-8"))?;
        let mut p = Package::new(manifest_text, component.to_vec())?;
        if !signature.is_empty() {
            let text = std::str::from_utf8(signature)
                .map_err(|_| Error::invalid("signature", "the signature block is not UTF-8"))?;
            p.signature = Some(toml::from_str(text).map_err(|e| {
                Error::invalid(
                    "signature",
                    format!("unreadable signature block: {}", e.message()),
                )
            })?);
        }
        Ok(p)
    }

    /// Encode as a package file.
    pub fn encode(&self) -> Vec<u8> {
        let sig = self
            .signature
            .as_ref()
            .map(|s| toml::to_string(s).unwrap_or_default())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(self.component.len() + self.manifest_text.len() + 128);
        out.extend_from_slice(MAGIC);
        for part in [
            self.manifest_text.as_bytes(),
            &self.component,
            sig.as_bytes(),
        ] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// The digest a signature covers.
    pub fn digest(&self) -> [u8; 32] {
        digest(self.manifest_text.as_bytes(), &self.component)
    }

    /// Sign with a publisher key; the key's publisher must be the manifest's.
    pub fn sign(&mut self, key: &PublisherKey) -> Result<()> {
        if key.publisher != self.manifest.publisher {
            return Err(Error::invalid(
                "key",
                format!(
                    "the key belongs to publisher {:?} but the manifest names publisher {:?}",
                    key.publisher, self.manifest.publisher
                ),
            ));
        }
        let sig = key.signing.sign(&self.digest());
        self.signature = Some(PackageSignature {
            publisher: key.publisher.clone(),
            signature: hex::encode(sig.to_bytes()),
        });
        Ok(())
    }

    /// Check the signature against the publisher's trusted key (`trusted`,
    /// from the trust store). In development mode an unsigned package or an
    /// unknown publisher is accepted; a signature that does not verify
    /// against a trusted key never is.
    pub fn verify(&self, trusted: Option<&str>, dev_mode: bool) -> Result<Trust> {
        let publisher = &self.manifest.publisher;
        let Some(sig) = &self.signature else {
            return if dev_mode {
                Ok(Trust::Development)
            } else {
                Err(Error::invalid(
                    "signature",
                    "the package is not signed; sign it with `lifelong plugin sign` (unsigned packages are accepted only in development mode)",
                ))
            };
        };
        if &sig.publisher != publisher {
            return Err(Error::invalid(
                "signature",
                format!(
                    "the package is signed by {:?} but its manifest names publisher {publisher:?}",
                    sig.publisher
                ),
            ));
        }
        let Some(key) = trusted else {
            return if dev_mode {
                Ok(Trust::Development)
            } else {
                Err(Error::invalid(
                    "signature",
                    format!("publisher {publisher:?} is not in the trust store; a city admin must add its public key first"),
                ))
            };
        };
        let key = parse_public_key(key)?;
        let bytes: [u8; 64] = hex::decode(&sig.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::invalid("signature", "the signature is not 64 bytes of hex"))?;
        key.verify(&self.digest(), &ed25519_dalek::Signature::from_bytes(&bytes))
            .map_err(|_| {
                Error::invalid(
                    "signature",
                    format!("the signature does not match publisher {publisher:?}'s key: the manifest or the component was changed after signing, or another key signed it"),
                )
            })?;
        Ok(Trust::Signed)
    }
}

fn section<'a>(bytes: &'a [u8], what: &str, max: usize) -> Result<(&'a [u8], &'a [u8])> {
    let truncated = || invalid(format!("the package is truncated in its {what} section"));
    let len: [u8; 4] = bytes
        .get(..4)
        .ok_or_else(truncated)?
        .try_into()
        .map_err(|_| truncated())?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(invalid(format!(
            "the {what} section is {len} bytes, more than the {max} allowed"
        )));
    }
    let body = bytes.get(4..4 + len).ok_or_else(truncated)?;
    Ok((body, &bytes[4 + len..]))
}

/// A public key in the trust store: 32 bytes as hex.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::invalid("public_key", "a public key is 64 hex digits"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| Error::invalid("public_key", "not a valid Ed25519 public key"))
}

/// A publisher's signing key, as kept in a key file (TOML, mode 0600).
#[derive(Debug)]
pub struct PublisherKey {
    /// The publisher it signs for.
    pub publisher: String,
    signing: SigningKey,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    publisher: String,
    secret_key: String,
    public_key: String,
}

impl PublisherKey {
    /// A new random key for `publisher`.
    pub fn generate(publisher: &str) -> Result<PublisherKey> {
        if !manifest::ident(publisher, &['-']) {
            return Err(Error::invalid(
                "publisher",
                "a publisher is lower-case letters, digits and '-', starting with a letter",
            ));
        }
        Ok(PublisherKey {
            publisher: publisher.to_string(),
            signing: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        })
    }

    /// The public key as hex (what goes in the trust store).
    pub fn public_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().to_bytes())
    }

    /// Write the key file (refusing to overwrite one), readable by the owner only.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(&KeyFile {
            publisher: self.publisher.clone(),
            secret_key: hex::encode(self.signing.to_bytes()),
            public_key: self.public_hex(),
        })?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        let mut f = opts
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(())
    }

    /// Read a key file.
    pub fn read(path: &Path) -> anyhow::Result<PublisherKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let f: KeyFile = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{} is not a key file: {}", path.display(), e.message())
        })?;
        let secret: [u8; 32] = hex::decode(&f.secret_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                anyhow::anyhow!("{}: secret_key is not 64 hex digits", path.display())
            })?;
        Ok(PublisherKey {
            publisher: f.publisher,
            signing: SigningKey::from_bytes(&secret),
        })
    }
}

/// Check a component's imports and exports against the plugin world: it
/// may import only `lifelong:plugin` interfaces of a host-API version this
/// kernel serves (no WASI, no filesystem, network or environment) and must
/// export the handler. Returns the host-API version it was built against.
pub fn check_component(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Result<semver::Version> {
    let ty = component.component_type();
    let mut versions = std::collections::BTreeSet::new();
    for (name, _) in ty.imports(engine) {
        let Some((package, version)) = name.split_once('@') else {
            return Err(Error::invalid(
                "component",
                format!("the component imports {name:?}, which is not a versioned lifelong:plugin interface"),
            ));
        };
        if !package.starts_with("lifelong:plugin/") {
            return Err(Error::invalid(
                "component",
                format!("the component imports {name:?}; plugins may import only lifelong:plugin interfaces (no WASI, filesystem, network or environment)"),
            ));
        }
        versions.insert(version.to_string());
    }
    let mut handler = None;
    for (name, _) in ty.exports(engine) {
        if let Some(v) = name.strip_prefix("lifelong:plugin/handler@") {
            handler = Some(v.to_string());
        }
    }
    let Some(handler) = handler else {
        return Err(Error::invalid(
            "component",
            "the component does not export lifelong:plugin/handler; build it with the Lifelong SDK's export macro",
        ));
    };
    versions.insert(handler);
    if versions.len() > 1 {
        return Err(Error::invalid(
            "component",
            format!(
                "the component mixes host-API versions {}",
                versions.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let version = versions.into_iter().next().unwrap_or_default();
    let parsed = semver::Version::parse(&version)
        .map_err(|_| Error::invalid("component", format!("bad host-API version {version:?}")))?;
    // Served if a served version has the same major and is not older: minor
    // versions only add, and the linker matches semver-compatible names.
    let served = manifest::HOST_APIS
        .iter()
        .filter_map(|v| semver::Version::parse(v).ok())
        .any(|s| s.major == parsed.major && s.major > 0 && s >= parsed);
    if !served {
        return Err(Error::invalid(
            "component",
            format!(
                "the component was built for host API {version}; this kernel serves {}",
                manifest::HOST_APIS.join(", ")
            ),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg() -> Package {
        Package::new(
            "id = \"p\"\nversion = \"1.0.0\"\npublisher = \"acme\"\nhost_api = \"^1.0\"\n".into(),
            b"\0asm-not-really".to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn signed_packages_round_trip_and_tampering_is_caught() {
        let key = PublisherKey::generate("acme").unwrap();
        let mut p = pkg();
        p.sign(&key).unwrap();
        let bytes = p.encode();
        let back = Package::decode(&bytes).unwrap();
        assert_eq!(
            back.verify(Some(&key.public_hex()), false).unwrap(),
            Trust::Signed
        );

        // One flipped byte of the component.
        let mut tampered = bytes.clone();
        tampered[8 + 4 + p.manifest_text.len() + 4 + 2] ^= 1;
        let e = Package::decode(&tampered)
            .unwrap()
            .verify(Some(&key.public_hex()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");

        // Another publisher's key.
        let other = PublisherKey::generate("acme").unwrap();
        let e = back
            .verify(Some(&other.public_hex()), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn unsigned_and_unknown_only_in_development_mode() {
        let p = pkg();
        let e = p.verify(None, false).unwrap_err().to_string();
        assert!(e.contains("not signed"), "{e}");
        assert_eq!(p.verify(None, true).unwrap(), Trust::Development);
        let mut s = pkg();
        s.sign(&PublisherKey::generate("acme").unwrap()).unwrap();
        let e = s.verify(None, false).unwrap_err().to_string();
        assert!(e.contains("not in the trust store"), "{e}");
    }

    #[test]
    fn malformed_files_are_refused_with_a_reason() {
        let e = Package::decode(b"PK\x03\x04").unwrap_err().to_string();
        assert!(e.contains("bad magic"), "{e}");
        let bytes = pkg().encode();
        let e = Package::decode(&bytes[..bytes.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut extra = bytes.clone();
        extra.push(0);
        let e = Package::decode(&extra).unwrap_err().to_string();
        assert!(e.contains("unexpected bytes"), "{e}");
    }
}
