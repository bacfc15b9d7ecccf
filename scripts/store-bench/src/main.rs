//! `store-bench STORE DIR [KEYS]`: load KEYS (default 5,000,000) keys of
//! 32-byte values in batches of 10,000, then 1,000,000 random point reads,
//! 1,000,000 random point writes (batches of 10,000), then a full snapshot
//! (a consistent read of every entry, written to a file). Prints seconds per
//! phase and the store's size on disk. Every store runs without fsync on
//! write (spilled state is made durable by checkpoints, not by the store)
//! and with a 64 MiB cache.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

const BATCH: usize = 10_000;
const OPS: usize = 1_000_000;
const CACHE: u64 = 64 << 20;

/// Keys as the state tables store them: a 2-byte key group, then the key.
fn key(i: u64) -> [u8; 10] {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(&((h % 128) as u16).to_be_bytes());
    k[2..].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(i: u64, round: u64) -> [u8; 32] {
    let mut v = [0u8; 32];
    for (j, c) in v.chunks_mut(8).enumerate() {
        c.copy_from_slice(&(i ^ round ^ j as u64).to_le_bytes());
    }
    v
}

/// xorshift, so every store sees the same key sequence.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

trait Store {
    fn write_batch(&mut self, items: &[([u8; 10], [u8; 32])]);
    fn read(&mut self, k: &[u8]) -> bool;
    fn snapshot_to(&mut self, out: &mut dyn Write) -> u64;
}

#[cfg(feature = "fjall")]
mod fj {
    use super::*;
    pub struct S(pub fjall::Keyspace, pub fjall::PartitionHandle);
    pub fn open(dir: &Path) -> S {
        let ks = fjall::Config::new(dir)
            .cache_size(CACHE)
            .manual_journal_persist(true)
            .open()
            .unwrap();
        let p = ks
            .open_partition("state", fjall::PartitionCreateOptions::default())
            .unwrap();
        S(ks, p)
    }
    impl Store for S {
        fn write_batch(&mut self, items: &[([u8; 10], [u8; 32])]) {
            let mut b = self.0.batch();
            for (k, v) in items {
                b.insert(&self.1, *k, *v);
            }
            b.commit().unwrap();
        }
        fn read(&mut self, k: &[u8]) -> bool {
            self.1.get(k).unwrap().is_some()
        }
        fn snapshot_to(&mut self, out: &mut dyn Write) -> u64 {
            let snap = self.1.snapshot();
            let mut n = 0;
            for kv in snap.iter() {
                let (k, v) = kv.unwrap();
                out.write_all(&k).unwrap();
                out.write_all(&v).unwrap();
                n += 1;
            }
            n
        }
    }
}

#[cfg(feature = "redb")]
mod rd {
    use super::*;
    use redb::{ReadableTable, TableDefinition};
    const T: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
    pub struct S(pub redb::Database, pub usize);
    pub fn open(dir: &Path) -> S {
        let db = redb::Builder::new()
            .set_cache_size(CACHE as usize)
            .create(dir.join("state.redb"))
            .unwrap();
        S(db, 0)
    }
    impl Store for S {
        fn write_batch(&mut self, items: &[([u8; 10], [u8; 32])]) {
            let mut tx = self.0.begin_write().unwrap();
            // Non-durable commits keep freed pages until a durable one, so
            // make every 50th durable as a spill store would.
            self.1 += 1;
            if self.1 % 50 != 0 {
                tx.set_durability(redb::Durability::None);
            }
            {
                let mut t = tx.open_table(T).unwrap();
                for (k, v) in items {
                    t.insert(&k[..], &v[..]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        fn read(&mut self, k: &[u8]) -> bool {
            let tx = self.0.begin_read().unwrap();
            let t = tx.open_table(T).unwrap();
            let found = t.get(k).unwrap().is_some();
            found
        }
        fn snapshot_to(&mut self, out: &mut dyn Write) -> u64 {
            let tx = self.0.begin_read().unwrap();
            let t = tx.open_table(T).unwrap();
            let mut n = 0;
            for kv in t.iter().unwrap() {
                let (k, v) = kv.unwrap();
                out.write_all(k.value()).unwrap();
                out.write_all(v.value()).unwrap();
                n += 1;
            }
            n
        }
    }
}

#[cfg(feature = "sled")]
mod sl {
    use super::*;
    pub struct S(pub sled::Db);
    pub fn open(dir: &Path) -> S {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE)
            .flush_every_ms(None)
            .open()
            .unwrap();
        S(db)
    }
    impl Store for S {
        fn write_batch(&mut self, items: &[([u8; 10], [u8; 32])]) {
            let mut b = sled::Batch::default();
            for (k, v) in items {
                b.insert(&k[..], &v[..]);
            }
            self.0.apply_batch(b).unwrap();
        }
        fn read(&mut self, k: &[u8]) -> bool {
            self.0.get(k).unwrap().is_some()
        }
        /// sled has no snapshots: a plain scan (not consistent under writes).
        fn snapshot_to(&mut self, out: &mut dyn Write) -> u64 {
            let mut n = 0;
            for kv in self.0.iter() {
                let (k, v) = kv.unwrap();
                out.write_all(&k).unwrap();
                out.write_all(&v).unwrap();
                n += 1;
            }
            n
        }
    }
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store = args[1].as_str();
    let dir = Path::new(&args[2]);
    let keys: u64 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(5_000_000);
    std::fs::create_dir_all(dir).unwrap();
    let mut s: Box<dyn Store> = match store {
        #[cfg(feature = "fjall")]
        "fjall" => Box::new(fj::open(dir)),
        #[cfg(feature = "redb")]
        "redb" => Box::new(rd::open(dir)),
        #[cfg(feature = "sled")]
        "sled" => Box::new(sl::open(dir)),
        other => panic!("unknown store {other}"),
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // Load in random order, as keys arrive in a stream.
    let t = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let stride = 2_654_435_761u64; // coprime with 5M and 10^k: a permutation
    for j in 0..keys {
        let i = (j * stride) % keys;
        batch.push((key(i), value(i, 0)));
        if batch.len() == BATCH {
            s.write_batch(&batch);
            batch.clear();
        }
    }
    s.write_batch(&batch);
    batch.clear();
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut hits = 0;
    for _ in 0..OPS {
        hits += s.read(&key(rng.below(keys))) as u64;
    }
    let reads = t.elapsed().as_secs_f64();
    assert_eq!(hits, OPS as u64);
    let t = Instant::now();
    for _ in 0..OPS {
        let i = rng.below(keys);
        batch.push((key(i), value(i, 1)));
        if batch.len() == BATCH {
            s.write_batch(&batch);
            batch.clear();
        }
    }
    s.write_batch(&batch);
    let writes = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let snap_path = dir.join("snapshot.bin");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&snap_path).unwrap());
    let n = s.snapshot_to(&mut out);
    out.flush().unwrap();
    out.get_ref().sync_all().unwrap();
    let snap = t.elapsed().as_secs_f64();
    assert_eq!(n, keys);
    let snap_bytes = std::fs::metadata(&snap_path).unwrap().len();
    std::fs::remove_file(&snap_path).unwrap();
    drop(s);
    println!(
        "{store}: keys {keys} load {load:.2}s ({:.0} k/s) reads {reads:.2}s ({:.0} k/s) writes {writes:.2}s ({:.0} k/s) snapshot {snap:.2}s ({} MB) disk {} MB",
        keys as f64 / load / 1e3,
        OPS as f64 / reads / 1e3,
        OPS as f64 / writes / 1e3,
        snap_bytes >> 20,
        du(dir) >> 20
    );
}
