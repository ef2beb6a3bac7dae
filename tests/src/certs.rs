//! Certificates made at test time (nothing checked in that expires): a test CA and a server
//! certificate it signed for `localhost` and `127.0.0.1`, written as PEM files into a fresh
//! temporary directory, removed on drop.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files of a test CA and of a server certificate it signed.
pub struct TestCerts {
    dir: PathBuf,
}

impl TestCerts {
    /// A new CA and server certificate (for `localhost` and `127.0.0.1`).
    pub fn new() -> TestCerts {
        let dir = std::env::temp_dir().join(format!(
            "ws-tests-certs-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create the certificates' directory");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ws-tests CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let certs = TestCerts { dir };
        std::fs::write(certs.ca(), ca.pem()).expect("write ca.pem");
        std::fs::write(certs.cert(), cert.pem()).expect("write cert.pem");
        std::fs::write(certs.key(), key.serialize_pem()).expect("write key.pem");
        certs
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The server's private key (PEM, PKCS#8).
    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        TestCerts::new()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
