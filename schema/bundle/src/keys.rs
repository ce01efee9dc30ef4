//! Key files: ed25519 keys as PKCS#8 / SPKI PEM (interoperable with
//! `openssl genpkey -algorithm ed25519`). Private keys are written as PKCS#8
//! v1 (RFC 8410: the seed alone, as OpenSSL writes and reads them) and read
//! in v1 or v2 (RFC 5958: the public key attached, checked against the seed).
//! A key id is the hex SHA-256 of the raw 32-byte public key.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ringfence_schema::digest::sha256_hex;

/// A private key, ready to sign.
pub struct SigningKey {
    pub(crate) key: ed25519_dalek::SigningKey,
    /// Hex SHA-256 of the public key.
    pub keyid: String,
}

/// A public key trusted to sign bundles.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub(crate) key: ed25519_dalek::VerifyingKey,
    /// Hex SHA-256 of the public key.
    pub keyid: String,
}

/// Why a key could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The output file exists.
    #[error(
        "{0} already exists; refusing to overwrite a key (choose another --out prefix or remove it yourself)"
    )]
    Exists(PathBuf),
    /// A private key readable by group or others.
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` first", path = .0.display(), mode = .1)]
    Permissions(PathBuf, u32),
    /// Reading or writing failed.
    #[error("{path}: {err}", path = .0.display(), err = .1)]
    Io(PathBuf, std::io::Error),
    /// Not a PEM ed25519 key.
    #[error("{path}: not an ed25519 {kind} key in PEM form ({why})", path = .0.display(), kind = .1, why = .2)]
    Format(PathBuf, &'static str, String),
    /// No randomness.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

impl KeyError {
    /// A refusal to act (an existing file, a readable private key), as
    /// opposed to trouble reading or writing: the CLI exits 1, not 2.
    pub fn is_refusal(&self) -> bool {
        matches!(self, KeyError::Exists(_) | KeyError::Permissions(..))
    }
}

/// Hex SHA-256 of a raw public key.
pub fn key_id(public: &[u8; 32]) -> String {
    sha256_hex(public)
}

/// Write a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`.
/// Refuses to overwrite either. Returns the key id.
pub fn generate_keypair(prefix: &Path) -> Result<String, KeyError> {
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (private, public) = (with(".key"), with(".pub"));
    for p in [&private, &public] {
        if fs::symlink_metadata(p).is_ok() {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    // v1 (no public key attached): OpenSSL 3.0 refuses the v2 form.
    let v1 = KeypairBytes {
        secret_key: seed,
        public_key: None,
    };
    let pem = v1
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Format(private.clone(), "private", e.to_string()))?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Format(public.clone(), "public", e.to_string()))?;
    write_new(&private, pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, pub_pem.as_bytes(), 0o644) {
        // Half a key pair is useless; the private half is ours to remove.
        let _ = fs::remove_file(&private);
        return Err(e);
    }
    Ok(key_id(key.verifying_key().as_bytes()))
}

/// Create `path` (never replacing anything, symlinks included) with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists(path.to_path_buf()),
            _ => KeyError::Io(path.to_path_buf(), e),
        })?;
    let io = |e| KeyError::Io(path.to_path_buf(), e);
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Read a private key, refusing one that group or others can read. The
/// mode is checked on the opened file, so it cannot change in between.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |e| KeyError::Io(path.to_path_buf(), e);
    let mut file = fs::File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions(path.to_path_buf(), mode & 0o777));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io)?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&text)
        .map_err(|e| KeyError::Format(path.to_path_buf(), "private", e.to_string()))?;
    let keyid = key_id(key.verifying_key().as_bytes());
    Ok(SigningKey { key, keyid })
}

/// The largest key file read (a PEM key is a few hundred bytes).
const MAX_KEY_BYTES: u64 = 64 << 10;

/// Read a trusted public key.
pub fn load_trusted_key(path: &Path) -> Result<TrustedKey, KeyError> {
    let io = |e| KeyError::Io(path.to_path_buf(), e);
    let bytes = crate::read::read_capped(path, MAX_KEY_BYTES).map_err(io)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    TrustedKey::from_pem(&text).map_err(|e| KeyError::Format(path.to_path_buf(), "public", e))
}

/// Read the trusted public keys of a `--trust` flag, in order.
pub fn load_trusted_keys(paths: &[PathBuf]) -> Result<Vec<TrustedKey>, KeyError> {
    paths.iter().map(|p| load_trusted_key(p)).collect()
}

impl TrustedKey {
    /// Parse an SPKI PEM public key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let key =
            ed25519_dalek::VerifyingKey::from_public_key_pem(text).map_err(|e| e.to_string())?;
        Ok(TrustedKey {
            keyid: key_id(key.as_bytes()),
            key,
        })
    }

    /// The key as SPKI PEM, as in a `PREFIX.pub` file.
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("an ed25519 public key always encodes")
    }
}

impl SigningKey {
    /// The matching public key.
    pub fn trusted(&self) -> TrustedKey {
        TrustedKey {
            key: self.key.verifying_key(),
            keyid: self.keyid.clone(),
        }
    }

    /// A key from a 32-byte seed (tests and golden files pin keys this way).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        SigningKey {
            keyid: key_id(key.verifying_key().as_bytes()),
            key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_private_0600_and_refuses_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("rf-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("k");
        let id = generate_keypair(&prefix).unwrap();
        let mode = fs::metadata(dir.join("k.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            generate_keypair(&prefix),
            Err(KeyError::Exists(_))
        ));
        let sk = load_signing_key(&dir.join("k.key")).unwrap();
        let pk = load_trusted_key(&dir.join("k.pub")).unwrap();
        assert_eq!(sk.keyid, id);
        assert_eq!(pk.keyid, id);
        fs::set_permissions(dir.join("k.key"), fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signing_key(&dir.join("k.key")).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rf-keys-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn openssl(args: &[&str]) -> std::process::Output {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl binary runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    #[test]
    fn keygen_private_key_is_pkcs8_v1_and_openssl_reads_it() {
        let dir = scratch("v1");
        let prefix = dir.join("k");
        let id = generate_keypair(&prefix).unwrap();
        let key = dir.join("k.key");
        // What the file holds, parsed: version 0 (v1) and no public key.
        let pem = fs::read_to_string(&key).unwrap();
        let (label, der) =
            ed25519_dalek::pkcs8::spki::der::pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        let info = ed25519_dalek::pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        assert_eq!(u8::from(info.version()), 0, "PKCS#8 v1");
        assert!(info.public_key.is_none());
        // OpenSSL reads it, and derives the same public key keygen wrote.
        let k = key.to_str().unwrap();
        openssl(&["pkey", "-in", k, "-noout"]);
        let derived = dir.join("derived.pub");
        openssl(&[
            "pkey",
            "-in",
            k,
            "-pubout",
            "-out",
            derived.to_str().unwrap(),
        ]);
        assert_eq!(
            fs::read_to_string(&derived).unwrap(),
            fs::read_to_string(dir.join("k.pub")).unwrap()
        );
        assert_eq!(load_trusted_key(&derived).unwrap().keyid, id);
        // And OpenSSL's re-encoding of it is one we read back to the same key.
        let again = dir.join("again.key");
        openssl(&["pkey", "-in", k, "-out", again.to_str().unwrap()]);
        fs::set_permissions(&again, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_signing_key(&again).unwrap().keyid, id);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_keys_openssl_generates_and_v2_keys() {
        let dir = scratch("read");
        // openssl genpkey: v1.
        let gen_key = dir.join("o.key");
        openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            gen_key.to_str().unwrap(),
        ]);
        fs::set_permissions(&gen_key, fs::Permissions::from_mode(0o600)).unwrap();
        let pub_key = dir.join("o.pub");
        openssl(&[
            "pkey",
            "-in",
            gen_key.to_str().unwrap(),
            "-pubout",
            "-out",
            pub_key.to_str().unwrap(),
        ]);
        let sk = load_signing_key(&gen_key).unwrap();
        assert_eq!(sk.keyid, load_trusted_key(&pub_key).unwrap().keyid);
        // v2 (public key attached), as keygen wrote before: still read.
        let seed = [7u8; 32];
        let v2 = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let v2_path = dir.join("v2.key");
        write_new(&v2_path, v2.as_bytes(), 0o600).unwrap();
        assert_eq!(
            load_signing_key(&v2_path).unwrap().keyid,
            SigningKey::from_seed(seed).keyid
        );
        // v2 whose attached public key is not the seed's: refused.
        let mut other = KeypairBytes {
            secret_key: seed,
            public_key: None,
        };
        other.public_key = Some(ed25519_dalek::pkcs8::PublicKeyBytes(
            *ed25519_dalek::SigningKey::from_bytes(&[8u8; 32])
                .verifying_key()
                .as_bytes(),
        ));
        let bad = dir.join("bad.key");
        write_new(
            &bad,
            other.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
            0o600,
        )
        .unwrap();
        let err = load_signing_key(&bad).err().unwrap();
        assert!(matches!(err, KeyError::Format(..)), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
