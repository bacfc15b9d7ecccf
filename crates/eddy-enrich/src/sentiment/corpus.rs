//! Human-rated texts and how well the scorer agrees with them.

use std::path::Path;

use super::Scorer;

/// The file name of the rated tweets in the sentiment data directory.
pub const TWEETS: &str = "tweets_GroundTruth.txt";

/// A text and the mean valence people gave it (−4..+4).
#[derive(Clone, Debug, PartialEq)]
pub struct Rated {
    /// The mean human rating.
    pub rating: f64,
    /// The text.
    pub text: String,
}

/// Reads `id<TAB>rating<TAB>text` lines (CRLF or LF); a line that does not
/// parse is an error naming its number.
pub fn read_rated(path: &Path) -> Result<Vec<Rated>, String> {
    let data = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    data.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let mut cols = line.trim_end_matches('\r').splitn(3, '\t');
            let (_, rating, text) = (cols.next(), cols.next(), cols.next());
            match (rating.and_then(|r| r.trim().parse().ok()), text) {
                (Some(rating), Some(text)) => Ok(Rated {
                    rating,
                    text: text.to_string(),
                }),
                _ => Err(format!(
                    "{}:{}: expected `id<TAB>rating<TAB>text`",
                    path.display(),
                    n + 1
                )),
            }
        })
        .collect()
}

/// Pearson correlation of the compound scores with the human ratings.
pub fn correlation(scorer: &mut Scorer, rated: &[Rated]) -> f64 {
    let pairs: Vec<(f64, f64)> = rated
        .iter()
        .map(|r| (scorer.score(&r.text).compound, r.rating))
        .collect();
    pearson(&pairs)
}

/// Pearson correlation of paired samples (0 when either side is constant).
pub fn pearson(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len() as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return 0.0;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_of_known_pairs() {
        assert!((pearson(&[(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]) + 1.0).abs() < 1e-12);
        // x = 1..4, y = 1, 3, 2, 4: r = 4 / sqrt(5 * 5) = 0.8.
        let r = pearson(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (4.0, 4.0)]);
        assert!((r - 0.8).abs() < 1e-12, "{r}");
        assert_eq!(pearson(&[(1.0, 1.0), (1.0, 2.0)]), 0.0);
    }

    #[test]
    fn malformed_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("eddy-rated-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rated.txt");
        std::fs::write(&path, "1\t2.5\tgood day\r\n2\tx\tbad\r\n").unwrap();
        let err = read_rated(&path).unwrap_err();
        assert!(
            err.ends_with("rated.txt:2: expected `id<TAB>rating<TAB>text`"),
            "{err}"
        );
        std::fs::write(&path, "1\t2.5\tgood day\r\n\r\n2\t-1\tbad\r\n").unwrap();
        let rated = read_rated(&path).unwrap();
        assert_eq!(
            rated[1],
            Rated {
                rating: -1.0,
                text: "bad".into()
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
