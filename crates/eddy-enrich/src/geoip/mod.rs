//! The `geoip` transform: where an IP address is, from a MaxMind-format
//! database the user supplies (GeoIP2/GeoLite2 City or Country, ASN, ISP,
//! or any database with the same record layout).
//!
//! ```toml
//! [transforms.geo]
//! type = "geoip"
//! inputs = ["logins"]
//! field = "client_ip"
//! database = "/var/lib/geoip/GeoLite2-City.mmdb"
//! target = "geo"              # default
//! check_every = "10s"         # how often the file is checked for a new version
//! ```
//!
//! `target` becomes a map of what the database knows about the address, in
//! English where names have languages: `country_code`, `country_name`,
//! `continent_code`, `region_code`, `region_name` (the first subdivision),
//! `city`, `postal_code`, `latitude`, `longitude`, `time_zone`,
//! `accuracy_radius_km`, and from ASN or ISP databases `asn` and `as_org`;
//! always `network`, the database's network holding the address (CIDR).
//! An address the database has nothing for (private ranges, unallocated
//! space) leaves the event unchanged; a field that is not an IP address
//! sends the event to `NAME.dead_letters` with the reason. The database is
//! read into memory at the start (a missing or damaged file stops the run
//! before it begins) and read again, atomically, when the file changes.

#[cfg(test)]
mod mmdb;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, NodeContext, Prepared, TransformFactory};
use eddy_core::config::Duration as ConfigDuration;
use eddy_core::{Batch, Collector, Fields, Operator, OperatorContext, Sym, Value};
use eddy_ops::transforms::map::FieldPath;
use maxminddb::{geoip2, Reader};
use serde::Deserialize;

use crate::reload::{interval, Reloading, WatchedFile};
use crate::text_field::{prefix, TextField};

/// Configuration of a `geoip` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// Dotted path of the IP address (a string).
    pub field: FieldPath,
    /// The MaxMind-format database file (`.mmdb`).
    pub database: PathBuf,
    /// Where the location goes (default `geo`).
    #[serde(default = "default_target")]
    pub target: FieldPath,
    /// How often the file is checked for a new version (default `10s`).
    #[serde(default)]
    pub check_every: Option<ConfigDuration>,
}

fn default_target() -> FieldPath {
    FieldPath::parse("geo").expect("a valid path")
}

/// A loaded database and whether its records are ASN-style.
pub struct Database {
    reader: Reader<Vec<u8>>,
    asn: bool,
}

impl Database {
    /// Reads and checks the database at `path`.
    pub fn open(path: &Path) -> Result<Database, String> {
        let reader = Reader::open_readfile(path)
            .map_err(|e| format!("not a readable MaxMind-format database: {e}"))?;
        let kind = reader.metadata().database_type.to_ascii_uppercase();
        let asn = kind.contains("ASN") || kind.contains("ISP");
        Ok(Database { reader, asn })
    }
}

type Shared = Arc<Reloading<Database>>;

impl TransformFactory for GeoIpConfig {
    fn prepare(&self, cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        let every = interval(self.check_every, Duration::from_secs(10));
        let origin = WatchedFile::new(self.database.clone(), Database::open);
        let shared: Shared = Reloading::start(origin, every).map_err(|e| {
            BuildError::Config(format!(
                "{}: cannot open the GeoIP database {e}; give `database` the path of a \
                 .mmdb file",
                cx.name
            ))
        })?;
        Ok(Some(Prepared::new(shared)))
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(GeoIpOperator {
            text: TextField::new(&cx.name, &self.field, &self.target),
            database: Arc::clone(&*cx.prepared::<Shared>()?),
            keys: Keys::new(),
        }))
    }
}

/// The `geoip` operator.
pub struct GeoIpOperator {
    text: TextField,
    database: Shared,
    keys: Keys,
}

impl Operator for GeoIpOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        _cx: &mut OperatorContext,
        out: &mut Collector,
    ) {
        let db = self.database.get();
        let keys = &self.keys;
        self.text
            .try_apply(batch, out, |text| locate(&db, keys, text));
    }
}

/// What `db` knows of the address in `text`.
fn locate(db: &Database, keys: &Keys, text: &str) -> Result<Option<Value>, String> {
    let ip: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not an IP address", prefix(text, 64)))?;
    let found = db
        .reader
        .lookup(ip)
        .map_err(|e| format!("GeoIP lookup of {ip} failed: {e}"))?;
    let mut f = Fields::default();
    let mut put = |key: Sym, value: Option<Value>| {
        if let Some(v) = value {
            f.insert(key, v);
        }
    };
    let text = |s: Option<&str>| s.map(Value::str);
    if db.asn {
        let Some(r) = found.decode::<geoip2::Asn>().map_err(bad_record)? else {
            return Ok(None);
        };
        put(
            keys.asn,
            r.autonomous_system_number.map(|n| Value::Int(n.into())),
        );
        put(keys.as_org, text(r.autonomous_system_organization));
    } else {
        let Some(r) = found.decode::<geoip2::City>().map_err(bad_record)? else {
            return Ok(None);
        };
        put(keys.country_code, text(r.country.iso_code));
        put(keys.country_name, text(r.country.names.english));
        put(keys.continent_code, text(r.continent.code));
        if let Some(region) = r.subdivisions.first() {
            put(keys.region_code, text(region.iso_code));
            put(keys.region_name, text(region.names.english));
        }
        put(keys.city, text(r.city.names.english));
        put(keys.postal_code, text(r.postal.code));
        put(keys.latitude, r.location.latitude.map(Value::Float));
        put(keys.longitude, r.location.longitude.map(Value::Float));
        put(keys.time_zone, text(r.location.time_zone));
        let radius = r.location.accuracy_radius;
        put(
            keys.accuracy_radius_km,
            radius.map(|r| Value::Int(r.into())),
        );
    }
    let network = found.network().map_err(bad_record)?;
    put(keys.network, Some(Value::str(&network.to_string())));
    Ok(Some(Value::Map(Arc::new(f))))
}

fn bad_record(e: maxminddb::MaxMindDbError) -> String {
    format!("the GeoIP database has a damaged record: {e}")
}

/// Field names of the result map, interned once.
struct Keys {
    country_code: Sym,
    country_name: Sym,
    continent_code: Sym,
    region_code: Sym,
    region_name: Sym,
    city: Sym,
    postal_code: Sym,
    latitude: Sym,
    longitude: Sym,
    time_zone: Sym,
    accuracy_radius_km: Sym,
    asn: Sym,
    as_org: Sym,
    network: Sym,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            country_code: Sym::intern("country_code"),
            country_name: Sym::intern("country_name"),
            continent_code: Sym::intern("continent_code"),
            region_code: Sym::intern("region_code"),
            region_name: Sym::intern("region_name"),
            city: Sym::intern("city"),
            postal_code: Sym::intern("postal_code"),
            latitude: Sym::intern("latitude"),
            longitude: Sym::intern("longitude"),
            time_zone: Sym::intern("time_zone"),
            accuracy_radius_km: Sym::intern("accuracy_radius_km"),
            asn: Sym::intern("asn"),
            as_org: Sym::intern("as_org"),
            network: Sym::intern("network"),
        }
    }
}

#[cfg(test)]
mod tests;
