//! The Numenta Anomaly Benchmark: reading its corpus ([`Corpus`]),
//! writing results in its format ([`write_results`]) and scoring them as
//! NAB does ([`score`]).

mod corpus;
pub mod score;

pub use corpus::{read_results, write_results, Corpus, NabError, Series};
pub use score::{Profile, Report, Score};
