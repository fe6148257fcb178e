//! What the experiments share and that is not itself an experiment: the data and training tasks
//! they run (a char-level LM on tiny-shakespeare, translation), and the small pieces their
//! claims are built from (seeds, scheme names, values over runs, the score of a diverged run,
//! the sabotage relabelling).

pub mod aggregate;
pub mod char_corpus;
pub mod char_lm;
pub mod head_report;
pub mod relabel;
pub mod scale;
pub mod scheme_label;
pub mod scored_loss;
pub mod seeds;
pub mod translation;
pub mod translation_data;
pub mod width;
