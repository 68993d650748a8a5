//! Held-out titles that are not new: a product catalog repeats titles word for word (the same
//! product under several ids, colour variants with one title), so part of a random test split is
//! text the model was trained on, and its score there is memory. [`SeenTitles`] holds the titles
//! of the training and dev items so that every NER figure can also be given on the held-out
//! titles whose words never occur there.
//!
//! Two titles are the same when their words are, compared case-insensitively: stricter than exact
//! text (a title that differs only in case or spacing counts as seen), so the unseen subset cannot
//! flatter a model. Dev items count as seen too: they are not trained on, but they pick the epoch.

use std::collections::HashSet;

use crate::record::LabeledRecord;

/// The titles of a set of records, by their lower-cased words.
#[derive(Debug, Default, Clone)]
pub struct SeenTitles(HashSet<String>);

/// A title's identity for these comparisons: its words, lower-cased, joined by spaces.
pub fn title_key(words: &[String]) -> String {
    words
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

impl SeenTitles {
    pub fn new<'a>(records: impl IntoIterator<Item = &'a LabeledRecord>) -> Self {
        SeenTitles(records.into_iter().map(|r| title_key(&r.words)).collect())
    }

    /// Whether `words` are, case aside, the words of one of the records.
    pub fn contains(&self, words: &[String]) -> bool {
        self.0.contains(&title_key(words))
    }

    /// The positions in `records` of those whose title was not seen.
    pub fn unseen_positions(&self, records: &[&LabeledRecord]) -> Vec<usize> {
        (0..records.len())
            .filter(|&i| !self.contains(&records[i].words))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogItem;
    use crate::split::Split;

    fn record(id: &str, title: &str) -> LabeledRecord {
        let item = CatalogItem {
            id: id.into(),
            title: title.into(),
            brand: String::new(),
            gender: String::new(),
            colour: String::new(),
            description: String::new(),
            line: 2,
        };
        let n = crate::words::split_words(title).len();
        LabeledRecord::new(&item, vec!["O".into(); n], Split::Train)
    }

    #[test]
    fn titles_are_the_same_by_their_words_case_aside() {
        let seen = SeenTitles::new(&[record("1", "Nike Men Red Shoes")]);
        let test = [
            record("2", "nike  men red SHOES"),
            record("3", "Nike Men Red Shoe"),
            record("4", " Nike Men Red Shoes "),
        ];
        let refs: Vec<&LabeledRecord> = test.iter().collect();
        assert_eq!(seen.unseen_positions(&refs), vec![1]);
        assert!(!SeenTitles::default().contains(&[]));
    }
}
