//! Test certificates, generated at test time (none are committed): a CA per
//! [`Pki`], and leaf certificates it signs for servers and clients. ECDSA
//! P-256 keys, valid from yesterday for 300 days, so they also pass the
//! Mozilla "intermediate" profile's certificate checks.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// (year, month, day) of a day number since 1970-01-01 (civil calendar).
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Validity, a positive serial number and the key identifiers strict
/// verifiers (sslyze's) require.
fn validity(p: &mut CertificateParams) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    p.serial_number = Some(rcgen::SerialNumber::from(SERIAL.fetch_add(1, Ordering::Relaxed)));
    p.use_authority_key_identifier_extension = true;
    let today = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400) as i64;
    let (y, m, d) = civil(today - 1);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil(today + 300);
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

impl Pki {
    /// A new CA named `name`, its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut p);
        let cert = p.self_signed(&key).unwrap();
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.pem()).unwrap();
        Pki { dir: dir.to_path_buf(), ca, issuer: Issuer::new(p, key) }
    }

    fn leaf(&self, file: &str, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut p);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf { cert: self.dir.join(format!("{file}.pem")), key: self.dir.join(format!("{file}.key")) };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, file: &str, names: &[&str]) -> Leaf {
        self.leaf(file, names.first().copied().unwrap_or(file), names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, file: &str, cn: &str) -> Leaf {
        self.leaf(file, cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

#[test]
fn civil_dates() {
    assert_eq!(civil(0), (1970, 1, 1));
    assert_eq!(civil(20_000), (2024, 10, 4));
    assert_eq!(civil(11_016), (2000, 2, 29));
}
