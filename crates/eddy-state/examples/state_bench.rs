//! Measures what checkpoints of keyed state cost: `cargo run --release -p
//! eddy-state --example state_bench [KEYS]` (default 1,000,000 keys of a
//! count+sum accumulator).
//!
//! Prints: the synchronous part of a snapshot (the stall at a barrier), the
//! time to serialise it and its bytes per key, the copy-on-write cost of the
//! first writes after it, restore times, the codec's size and speed with
//! field names per stream and per record, and CRC-32 throughput.

use std::hint::black_box;
use std::time::{Duration, Instant};

use eddy_core::codec::{Decoder, Encoder};
use eddy_core::{Event, Fields, Sym, Value};
use eddy_state::checkpoint::{state_file_name, CheckpointStore};
use eddy_state::{GroupRange, KeyGroup, StateTable, ValueTable};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn key(i: u64) -> (KeyGroup, [u8; 8]) {
    (KeyGroup::of(&i), i.to_be_bytes())
}

/// The textbook bytewise CRC-32 (IEEE), to compare with crc32fast.
fn crc32_bytewise(table: &[u32; 256], bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    t
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);

    // Count + sum per key.
    let mut table: ValueTable<(i64, f64)> = ValueTable::new(None);
    let t = Instant::now();
    for i in 0..keys {
        let (g, k) = key(i);
        let acc = table.update(g, &k, 0, || (0, 0.0));
        acc.0 += 1;
        acc.1 += i as f64;
    }
    println!("load: {keys} keys in {:.0} ms", ms(t.elapsed()));

    // The barrier's synchronous part; worst of 20.
    let mut stall = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let frozen = table.snapshot();
        stall = stall.max(t.elapsed());
        black_box(frozen);
    }
    let frozen = table.snapshot();
    println!(
        "snapshot: synchronous part {:.3} ms (worst of 20)",
        ms(stall)
    );

    // First write to each group while the snapshot lives copies that group.
    let mut worst = Duration::ZERO;
    let t = Instant::now();
    for g in 0..128u64 {
        let i = (0..)
            .map(|j| g + 128 * j)
            .find(|&i| KeyGroup::of(&i).get() == g as u32);
        let Some(i) = i.filter(|&i| i < keys) else {
            continue;
        };
        let (g, k) = key(i);
        let w = Instant::now();
        table.update(g, &k, 0, || (0, 0.0)).0 += 1;
        worst = worst.max(w.elapsed());
    }
    println!(
        "copy-on-write: first write to each of 128 groups {:.1} ms in all, worst single write {:.2} ms",
        ms(t.elapsed()),
        ms(worst)
    );

    let t = Instant::now();
    let mut bytes = Vec::new();
    frozen.write(&mut bytes);
    let serialise = t.elapsed();
    println!(
        "serialise: {:.0} ms, {} bytes ({:.1} bytes per key)",
        ms(serialise),
        bytes.len(),
        bytes.len() as f64 / keys as f64
    );
    drop(frozen);

    let t = Instant::now();
    let mut restored: ValueTable<(i64, f64)> = ValueTable::new(None);
    let n = restored.restore(&bytes, &GroupRange::all())?;
    println!("restore: {n} keys in {:.0} ms", ms(t.elapsed()));
    let t = Instant::now();
    let mut half: ValueTable<(i64, f64)> = ValueTable::new(None);
    let n = half.restore(&bytes, &GroupRange::new(0..64))?;
    println!(
        "restore of key groups 0..64: {n} keys in {:.0} ms",
        ms(t.elapsed())
    );

    let dir = std::env::temp_dir().join(format!("eddy-state-bench-{}", std::process::id()));
    let store = CheckpointStore::open(&dir)?;
    let t = Instant::now();
    let mut chk = store.begin(1)?;
    chk.write_file(&state_file_name("counts", &GroupRange::all()), &bytes)?;
    chk.write_sources(b"0")?;
    chk.commit()?;
    let write = t.elapsed();
    let t = Instant::now();
    let (latest, _) = store.latest_complete()?;
    println!(
        "checkpoint: write with fsync {:.0} ms, verify on listing {:.0} ms ({:?})",
        ms(write),
        ms(t.elapsed()),
        latest.map(|c| c.id)
    );
    std::fs::remove_dir_all(&dir)?;

    let t = Instant::now();
    let fast = crc32fast::hash(&bytes);
    let fast_time = t.elapsed();
    let table = crc_table();
    let t = Instant::now();
    let slow = crc32_bytewise(&table, &bytes);
    let slow_time = t.elapsed();
    assert_eq!(fast, slow);
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "crc32: crc32fast {:.0} MB/s, bytewise table {:.0} MB/s",
        mb / fast_time.as_secs_f64(),
        mb / slow_time.as_secs_f64()
    );

    // Codec: 1M events of four fields, names once per stream or per record.
    let names = ["merchant", "amount", "user", "country"].map(Sym::intern);
    let events: Vec<Event> = (0..1_000_000i64)
        .map(|i| {
            let mut f = Fields::with_capacity(4);
            f.push(names[0], Value::str(&format!("m-{}", i % 1000)));
            f.push(names[1], Value::Int(i % 50_000));
            f.push(names[2], Value::Int(i * 7));
            f.push(names[3], Value::str("DE"));
            Event::new(1_700_000_000_000 + i, f)
        })
        .collect();
    for per_record in [false, true] {
        let t = Instant::now();
        let mut enc = Encoder::new();
        for e in &events {
            if per_record {
                enc.reset_names();
            }
            enc.put(e);
        }
        let encode = t.elapsed();
        let out = enc.into_bytes();
        let t = Instant::now();
        let mut dec = Decoder::new(&out);
        let mut n = 0;
        while !dec.is_empty() {
            if per_record {
                // A record decodes on its own: a fresh dictionary each.
                let start = dec.position();
                let mut one = Decoder::new(&out[start..]);
                black_box(one.get::<Event>()?);
                dec.take(one.position())?;
            } else {
                black_box(dec.get::<Event>()?);
            }
            n += 1;
        }
        println!(
            "codec, names {}: {:.1} bytes per event, encode {:.0} ns/event, decode {:.0} ns/event ({n} events)",
            if per_record { "per record" } else { "once per stream" },
            out.len() as f64 / events.len() as f64,
            encode.as_nanos() as f64 / events.len() as f64,
            t.elapsed().as_nanos() as f64 / events.len() as f64,
        );
    }
    let json: usize = events
        .iter()
        .map(|e| {
            eddy_core::json::value_to_json_string(&Value::Map(std::sync::Arc::new(
                e.fields.clone(),
            )))
            .len()
                + 20
        })
        .sum();
    println!(
        "for scale: the same events as JSON lines with a ts field ≈ {:.1} bytes per event",
        json as f64 / events.len() as f64
    );
    Ok(())
}
