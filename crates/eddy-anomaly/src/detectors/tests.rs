//! Every detector on synthetic series with known spikes, level shifts and
//! seasonality; scores stay in [0, 1) and finite on hostile series; a
//! detector restored from its encoded state scores exactly as the original.

use eddy_core::codec::{decode_from, encode_to_vec};
use proptest::prelude::*;

use super::{KeyState, Method, Model, Params};

const HOUR: i64 = 3_600_000;

/// Deterministic noise in [−0.5, 0.5).
fn noise(i: usize) -> f64 {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    h as f64 / (1u64 << 24) as f64 - 0.5
}

fn run(model: &Model, xs: &[f64], step_ms: i64) -> Vec<(f64, bool)> {
    let mut key = model.key_state();
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let v = model.observe(&mut key, i as i64 * step_ms, &[x]);
            (v.score, v.is_anomaly)
        })
        .collect()
}

fn first_alarm(out: &[(f64, bool)]) -> Option<usize> {
    out.iter().position(|&(_, a)| a)
}

fn model(method: Method) -> Model {
    let params = Params {
        mute_ms: 60 * HOUR,
        ..Params::default()
    };
    Model::new(method, params, 1)
}

#[test]
fn point_detectors_find_a_spike_at_once_and_nothing_before() {
    let mut xs: Vec<f64> = (0..600).map(|i| 10.0 + noise(i)).collect();
    xs[500] = 20.0;
    for m in [
        Method::ZScore,
        Method::Ewma,
        Method::Iqr,
        Method::Mad,
        Method::Bocpd,
        Method::Ensemble,
    ] {
        let out = run(&model(m), &xs, 60_000);
        assert_eq!(first_alarm(&out), Some(500), "{m}");
    }
}

#[test]
fn change_detectors_find_a_level_shift_within_a_few_values() {
    // A shift of 1.5 standard deviations of the noise: too small to stand
    // out in one value, found by accumulating.
    let sd = (1.0f64 / 12.0).sqrt();
    let xs: Vec<f64> = (0..800)
        .map(|i| 10.0 + noise(i) + if i >= 500 { 1.5 * sd } else { 0.0 })
        .collect();
    for (m, within) in [
        (Method::Cusum, 20),
        (Method::PageHinkley, 30),
        (Method::Bocpd, 30),
    ] {
        let out = run(&model(m), &xs, 60_000);
        let first = first_alarm(&out);
        assert!(
            first.is_some_and(|i| (500..500 + within).contains(&i)),
            "{m}: first alarm at {first:?}"
        );
    }
}

#[test]
fn seasonal_knows_noon_from_midnight() {
    // Busy by day, idle by night, for three weeks; then a busy night.
    let level = |hour: i64| {
        if (8..20).contains(&(hour % 24)) {
            80.0
        } else {
            5.0
        }
    };
    let hours = 24 * 21;
    let mut xs: Vec<f64> = (0..hours).map(|h| level(h as i64) + noise(h)).collect();
    let odd = hours - 24 + 3; // 03:00 on the last day
    xs[odd] = 80.0;
    let out = run(&model(Method::Seasonal), &xs, HOUR);
    let alarms: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| o.1)
        .map(|(i, _)| i)
        .collect();
    assert!(alarms.contains(&odd), "{alarms:?}");
    // Once learnt, the daily swing itself is normal.
    assert!(alarms.iter().all(|&i| i < 24 * 2 || i == odd), "{alarms:?}");
}

#[test]
fn half_space_trees_find_an_odd_combination_of_two_fields() {
    // Two fields that move together; one point breaks the relation while
    // each value alone stays in its usual range.
    let m = Model::new(Method::Hst, Params::default(), 2);
    // Whether it crosses the threshold depends on the random trees; it
    // must score above every ordinary point of the last windows.
    let mut key = m.key_state();
    let mut scores = Vec::new();
    for i in 0..3000 {
        let a = (i % 100) as f64;
        let b = if i == 2500 { 100.0 - a } else { a + noise(i) };
        scores.push(m.observe(&mut key, i as i64, &[a, b]).score);
    }
    let odd = scores[2500];
    let ordinary = scores[2000..3000]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 500)
        .map(|(_, s)| *s)
        .fold(0.0f64, f64::max);
    assert!(odd > ordinary, "odd {odd} vs ordinary max {ordinary}");
}

#[test]
fn a_known_range_keeps_small_moves_from_looking_new() {
    // A quiet start, then a move well inside the range the values are
    // known to take (a percentage): learnt from the quiet start alone, the
    // bins make it a never-seen level. (The ensemble's hour-of-day
    // profile rightly finds a move of 15 standard deviations either way.)
    let mut xs: Vec<f64> = (0..200).map(|i| 50.0 + 0.2 * noise(i)).collect();
    xs.extend((200..260).map(|i| 53.0 + 0.2 * noise(i)));
    let learnt = run(&model(Method::Density), &xs, 60_000);
    let params = Params {
        range: Some((0.0, 100.0)),
        ..model(Method::Density).params().clone()
    };
    let known = run(&Model::new(Method::Density, params, 1), &xs, 60_000);
    assert_eq!(first_alarm(&learnt), Some(200));
    assert!(
        known[200].0 < learnt[200].0,
        "{} vs {}",
        known[200].0,
        learnt[200].0
    );
    assert_eq!(first_alarm(&known), None);
}

#[test]
fn an_incident_longer_than_the_mute_pages_once() {
    // Forty minutes of one-minute values far above the window's median,
    // with a ten-minute mute; then quiet, and a spike.
    let mut xs: Vec<f64> = (0..900).map(|i| 10.0 + noise(i)).collect();
    for (k, x) in xs[500..540].iter_mut().enumerate() {
        *x = 20.0 + k as f64;
    }
    xs[850] = 20.0;
    let params = Params {
        mute_ms: 10 * 60_000,
        ..Params::default()
    };
    let out = run(&Model::new(Method::Mad, params, 1), &xs, 60_000);
    let alarms: Vec<usize> = (0..out.len()).filter(|&i| out[i].1).collect();
    assert_eq!(alarms, [500, 850]);
}

#[test]
fn clean_series_raise_nothing() {
    let xs: Vec<f64> = (0..3000).map(|i| 50.0 + 5.0 * noise(i)).collect();
    for m in Method::ALL {
        let out = run(&model(m), &xs, 60_000);
        let n = out.iter().filter(|o| o.1).count();
        assert!(n <= 2, "{m}: {n} alarms on a clean series");
    }
}

fn hostile() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        Just(vec![3.0; 400]),
        Just(vec![0.0; 400]),
        prop::collection::vec(-1e300f64..1e300, 1..400),
        prop::collection::vec(prop_oneof![Just(1.0), Just(1e15), Just(-1e15)], 1..400),
        prop::collection::vec(-1.0f64..1.0, 1..400),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn scores_stay_in_range_and_finite(
        xs in hostile(),
        m in prop::sample::select(Method::ALL.to_vec()),
        // A range the values may well leave.
        range in prop::option::of((-1e6f64..1e6, 0.0f64..1e6).prop_map(|(lo, w)| (lo, lo + w))),
    ) {
        let model = Model::new(m, Params { min_samples: 5, hst_window: 16, range, ..Params::default() }, 1);
        let mut key = model.key_state();
        for (i, &x) in xs.iter().enumerate() {
            let v = model.observe(&mut key, i as i64 * 1000, &[x]);
            prop_assert!(v.score >= 0.0 && v.score < 1.0 || v.score == 1.0 && v.assessment.surprise.is_infinite(),
                "{m}: score {} at {i}", v.score);
            prop_assert!(v.score.is_finite() && !v.assessment.surprise.is_nan(), "{m}: {v:?}");
        }
    }

    #[test]
    fn a_restored_detector_scores_as_the_original(
        xs in prop::collection::vec(-100.0f64..100.0, 20..300),
        cut in 0usize..300,
        m in prop::sample::select(Method::ALL.to_vec()),
    ) {
        let model = Model::new(m, Params { min_samples: 5, hst_window: 16, mute_ms: 3000, ..Params::default() }, 1);
        let mut a = model.key_state();
        let mut b = model.key_state();
        for (i, &x) in xs.iter().enumerate() {
            if i == cut {
                b = decode_from::<KeyState>(&encode_to_vec(&b)).unwrap();
            }
            let t = i as i64 * 1000;
            let va = model.observe(&mut a, t, &[x]);
            let vb = model.observe(&mut b, t, &[x]);
            prop_assert_eq!(va.score.to_bits(), vb.score.to_bits(), "{} at {}", m, i);
            prop_assert_eq!(va.is_anomaly, vb.is_anomaly);
        }
    }
}
