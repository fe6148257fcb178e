//! End to end on real data: Multi30k val → BPE (joint and per language) → bucketed batches.
//! Skips, saying so on stderr, when the data directory has no Multi30k.

use saturn_datasets::batch::{
    Bucketing, TranslationBatchConfig, TranslationExample, translation_batches,
};
use saturn_datasets::rng::Order;
use saturn_datasets::tokenize::{SPECIALS, Tokenizer, TranslationBpe, VocabSharing};
use saturn_datasets::{Multi30kSplit, data_dir, load_multi30k, multi30k_dir};

const TEST: &str = "multi30k_val_round_trips_through_bpe_into_padded_batches";

#[test]
fn multi30k_val_round_trips_through_bpe_into_padded_batches() {
    let dir = match data_dir(None) {
        Ok(dir) if multi30k_dir(&dir).is_dir() => dir,
        Ok(dir) => {
            eprintln!("SKIP {TEST}: no {}", multi30k_dir(&dir).display());
            return;
        }
        Err(e) => {
            eprintln!("SKIP {TEST}: {e}");
            return;
        }
    };
    let pairs = load_multi30k(&dir, Multi30kSplit::Valid).unwrap();
    let texts = || pairs.iter().map(|p| (p.de.as_str(), p.en.as_str()));
    for (sharing, size) in [(VocabSharing::Joint, 2000), (VocabSharing::PerLanguage, 1200)] {
        let bpe = TranslationBpe::learn(texts(), size, sharing).unwrap();
        let examples: Vec<TranslationExample> = pairs
            .iter()
            .map(|p| TranslationExample {
                src: bpe.src.encode(&p.de).unwrap(),
                tgt: bpe.tgt.encode(&p.en).unwrap(),
            })
            .collect();
        for (p, ex) in pairs.iter().zip(&examples) {
            let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(bpe.src.decode(&ex.src).unwrap(), words(&p.de));
            assert_eq!(bpe.tgt.decode(&ex.tgt).unwrap(), words(&p.en));
        }
        let config = TranslationBatchConfig {
            batch_size: 32,
            bucketing: Bucketing::ByLength { pool_batches: 8 },
            specials: SPECIALS,
        };
        let order = Order::Shuffled { seed: 1, epoch: 0 };
        let batches = translation_batches(&examples, &config, order).unwrap();
        assert_eq!(batches.iter().map(|b| b.batch_size).sum::<usize>(), 1014);
        assert_eq!(batches, translation_batches(&examples, &config, order).unwrap());
    }
}
