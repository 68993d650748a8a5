//! Scores that cannot flatter: besides all test sentences, those whose words never occur as a
//! training sentence (CoNLL04's test set repeats 18 of its 288 sentences from training word for
//! word; ADE's folds repeat none).
use std::collections::HashSet;

use anyhow::Result;
use multitag_core::relations::{evaluate, Decoded, Document, ExtractionReport, TypeSet};

/// SpERT's evaluator on the test documents (with their predictions) whose token sequence is not
/// that of any training document.
pub fn evaluate_unseen(
    types: &TypeSet,
    train: &[Document],
    test: &[Document],
    predicted: &[Decoded],
) -> Result<ExtractionReport> {
    let seen: HashSet<&[String]> = train.iter().map(|d| d.tokens.as_slice()).collect();
    let (gold, found): (Vec<Document>, Vec<Decoded>) = test
        .iter()
        .zip(predicted)
        .filter(|(d, _)| !seen.contains(d.tokens.as_slice()))
        .map(|(d, p)| (d.clone(), p.clone()))
        .unzip();
    evaluate(types, &gold, &found, false).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use multitag_core::relations::{read_documents, read_types, ScoredEntity};

    #[test]
    fn sentences_seen_in_training_are_left_out() {
        let types = read_types("t", r#"{"entities": {"X": {}}, "relations": {}}"#).unwrap();
        let docs = r#"[{"tokens": ["a", "b"], "entities": [{"type": "X", "start": 0, "end": 1}], "relations": []},
                       {"tokens": ["c"], "entities": [{"type": "X", "start": 0, "end": 1}], "relations": []}]"#;
        let test = read_documents("d", docs, &types).unwrap().documents;
        let train = vec![test[0].clone()];
        // The seen sentence is predicted right, the unseen one wrong.
        let right = Decoded {
            entities: vec![ScoredEntity {
                entity: test[0].entities[0],
                score: 1.0,
            }],
            relations: vec![],
        };
        let predicted = vec![right, Decoded::default()];
        let all = evaluate(&types, &test, &predicted, false).unwrap();
        let unseen = evaluate_unseen(&types, &train, &test, &predicted).unwrap();
        assert_eq!((all.documents, unseen.documents), (2, 1));
        assert_eq!(all.entities.micro.recall, 0.5);
        assert_eq!(unseen.entities.micro.recall, 0.0);
    }
}
