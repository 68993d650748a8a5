//! Distant supervision: IOB2 title tags derived from the catalog's structured fields.
//!
//! There are no human token labels for the catalog, so tags are computed from `ProductBrand`,
//! `PrimaryColor` and statistics of the titles themselves. The rules are deterministic (no
//! randomness, no hash-order dependence) and print nothing. Words are those of
//! [`crate::words::split_words`]; all comparisons use the lowercased word with `’`
//! read as `'`. Precedence is BRAND, then GENDER, then TYPE, then COLOR: a word already tagged is
//! never re-tagged, so entities never overlap.
//!
//! **BRAND** — the title prefix that matches `ProductBrand`, tried in this order:
//! 1. the brand's words, word for word (the brand starts 99.8% of titles);
//! 2. the shortest title prefix whose letters and digits, concatenated, equal the brand's
//!    ("U.S.Polo Assn. Kids" for brand "U.S. Polo Assn. Kids");
//! 3. the longest common word prefix of title and brand, cut back to end on a word with a letter or
//!    digit, if its first word is not a colour or gender word ("HRX" for "HRX by Hrithik Roshan",
//!    "Marks" for title "Marks & Spencers …" and brand "Marks & Spencer").
//!
//! Otherwise there is no BRAND and the other rules start at word 0.
//!
//! **GENDER** — the first gender word after the brand, extended over directly following gender
//! words ("Baby Girls", "Kids Boys"). Gender words: men, women, boys, girls, boy, girl, unisex, kids,
//! kid, infant, infants, baby, babies, mens, womens and the possessives men's, women's, boy's,
//! girl's, kid's. A colour modifier directly before a colour word ("Baby Pink") is not a
//! gender word.
//!
//! **TYPE** — the item name, found in a *region* of the title:
//! 1. The region is the words after the brand, cut before a clause word (`with`, `for`, `in`; not
//!    as the region's first word): the first clause word whose left part has a type head (rule 3);
//!    if there is none, no cut when the whole region has a head; otherwise the first clause word.
//!    So "Kurta Set with Jacket" gives "… Kurta Set", "Tshirt for Boys" gives "… Tshirt", and
//!    "Striped with Floral Detail Straight Kurta" is not cut.
//! 2. Trailing noise is stripped from the region: words containing a digit (sizes, model codes),
//!    unit words (ml, g, gm, gms, kg, l, ltr, cm, mm, inch, inches, pc, pcs, oz, each), symbol
//!    words, colour words and the colour modifiers before them ("Epilator - White", "Bra FB-705
//!    Green"). A final `cream` after a non-colour word is a product ("Night Cream"), not a colour.
//! 3. The head is the region's last word if it is in the *type-head lexicon*, else the word before
//!    it if that one is (skipping a style name: "Bras Afreen"), else none.
//! 4. The TYPE is the head extended to the left by one word if the two words are a *type compound*
//!    ("Casual Shirt", "Trolley Bag", "Running Shoes"), and by one more if the three words are a
//!    three-word compound ("Eau de Toilette").
//! 5. Without a head, the TYPE is the region's last word if it is alphabetic and not excluded (see
//!    below); without that, the title has no TYPE.
//!
//! The lexicons are fitted on the catalog ([`Labeler::fit`], thresholds in [`LabelerConfig`]):
//! - *Type heads*: lowercased words that end the region (rule 1 with a plain cut at the first clause
//!   word, and rule 2) of at least `min_head_titles` (3) titles, are alphabetic, and are not
//!   excluded. A head seen with fewer than `min_brands` (2) brands is dropped when in at least half
//!   of its titles the word before it is a multi-brand head: that catches brand-specific style
//!   names ("Bras Cristina") while keeping single-brand products ("Coffee Mug").
//! - *Two-word compounds* `m h`: in at least `min_compound_titles` (5) titles from at least
//!   `min_brands` brands, `h` is the head found by rules 1–3 and `m` the word before it; `m` is
//!   alphabetic and not excluded; and `m` is followed by `h` in at least `min_modifier_share` (50%)
//!   of the titles in which `m` stands right before a head. The share test keeps lexicalised modifiers ("Casual
//!   Shirt": 96% of "casual" before a head) and drops free ones ("Casual Blazer").
//! - *Three-word compounds* `a m h`: `m h` is a compound, same count and brand thresholds, and `a`
//!   precedes `m h` in at least `min_extension_share` (80%) of its titles.
//! - *Excluded* words never start or end a TYPE: gender words, colour words, clause words, function
//!   words (or, and, of, the, a, an, to, by, on, at) and a fixed list of attribute words for
//!   pattern, fit, shape, style, neckline, length and material (solid, printed, slim, fit, straight,
//!   stretchable, neck, collar, a-line, leather, cotton, handcrafted, …; see `ATTRIBUTES`; it also
//!   holds the model numbers ii, iii, iv). Those describe an item rather than name it, so "Round Neck T-shirt" gives "T-shirt", "Straight Kurta" gives
//!   "Kurta" and "Stretchable Jeans" gives "Jeans".
//!
//! **COLOR** — every maximal run of untagged colour words after the brand is one entity ("Navy
//! Blue", "Rose Gold"); `&`, `/` and `and` separate entities ("Black & Grey" gives two). Colour
//! words: the lexicon, or a hyphenated word whose first part is in the lexicon and whose other parts
//! are colours or one of toned, tone, coloured, colored ("Gold-Toned", "Peach-Coloured",
//! "Olive-Green"); "Gold-Plated" is a material, not a colour. A colour modifier (light, dark, dusty,
//! off, sea, rose, lime, coffee, sky, royal, pastel, bright, deep, neon, powder, baby, ice, steel,
//! bottle) joins a run only directly before a colour word. The lexicon is a fixed list (the one in
//! `quality_ref.py` without "sea" (a modifier here) and "multi" (too often "Multi Layered"), plus
//! multicoloured, multicolour, multi-coloured, indigo, lilac, ivory) plus every alphabetic word of at
//! least 3 letters in `PrimaryColor` values, except "matte" (a finish), "rose" (a modifier) and
//! "multi".

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::CatalogItem;
use crate::tags::spans_from_iob2;
use crate::words::split_words;

/// The entity types produced by [`Labeler`], sorted.
pub const ENTITY_TYPES: [&str; 4] = ["BRAND", "COLOR", "GENDER", "TYPE"];

const GENDER_WORDS: &[&str] = &[
    "men", "women", "boys", "girls", "boy", "girl", "unisex", "kids", "kid", "infant", "infants",
    "baby", "babies", "mens", "womens", "men's", "women's", "boy's", "girl's", "kid's",
];
const BASE_COLOURS: &[&str] = &[
    "black",
    "white",
    "blue",
    "navy",
    "red",
    "green",
    "grey",
    "gray",
    "pink",
    "yellow",
    "orange",
    "purple",
    "brown",
    "beige",
    "maroon",
    "olive",
    "teal",
    "gold",
    "golden",
    "silver",
    "cream",
    "khaki",
    "charcoal",
    "mustard",
    "peach",
    "lavender",
    "magenta",
    "turquoise",
    "rust",
    "burgundy",
    "coral",
    "tan",
    "nude",
    "off-white",
    "multicoloured",
    "multicolour",
    "multi-coloured",
    "violet",
    "fuchsia",
    "copper",
    "bronze",
    "mauve",
    "taupe",
    "indigo",
    "lilac",
    "ivory",
];
const COLOUR_MODIFIERS: &[&str] = &[
    "light", "dark", "dusty", "off", "sea", "rose", "lime", "coffee", "sky", "royal", "pastel",
    "bright", "deep", "neon", "powder", "baby", "ice", "steel", "bottle",
];
/// `PrimaryColor` words that are not colours when they appear in titles.
const COLOUR_DENY: &[&str] = &["matte", "rose", "multi"];
const COLOUR_SUFFIXES: &[&str] = &["toned", "tone", "coloured", "colored"];
/// Colour words that are also product names when they end a title ("Night Cream").
const NOUN_COLOURS: &[&str] = &["cream"];
const CLAUSE_WORDS: &[&str] = &["with", "for", "in"];
const UNIT_WORDS: &[&str] = &[
    "ml", "g", "gm", "gms", "kg", "l", "ltr", "cm", "mm", "inch", "inches", "pc", "pcs", "oz",
    "each",
];
const FUNCTION_WORDS: &[&str] = &["or", "and", "of", "the", "a", "an", "to", "by", "on", "at"];
/// Words that describe an item's pattern, fit, shape, style, neckline, length or material.
const ATTRIBUTES: &[&str] = &[
    "solid",
    "printed",
    "print",
    "striped",
    "checked",
    "self",
    "design",
    "self-design",
    "woven",
    "embroidered",
    "textured",
    "colourblocked",
    "regular",
    "slim",
    "straight",
    "skinny",
    "fit",
    "relaxed",
    "tapered",
    "bootcut",
    "flared",
    "flare",
    "cropped",
    "ankle",
    "length",
    "ankle-length",
    "neck",
    "collar",
    "sleeve",
    "sleeves",
    "sleeveless",
    "stretchable",
    "distressed",
    "look",
    "fade",
    "washed",
    "hooded",
    "padded",
    "a-line",
    "round",
    "v-neck",
    "toe",
    "open",
    "front",
    "around",
    "fold",
    "style",
    "waist",
    "leg",
    "layered",
    "basic",
    "sustainable",
    "shaped",
    "small",
    "medium",
    "large",
    "mini",
    "leather",
    "suede",
    "linen",
    "cotton",
    "silk",
    "georgette",
    "woolen",
    "woollen",
    "pure",
    "blend",
    "geometric",
    "floral",
    "single-breasted",
    "double-breasted",
    "lightweight",
    "mid-rise",
    "high-rise",
    "low-rise",
    "full-coverage",
    "coverage",
    "non-padded",
    "handcrafted",
    "contemporary",
    "circular",
    "asymmetric",
    "sporty",
    "tailored",
    "high-low",
    "front-open",
    "calf-length",
    "knee-length",
    "slim-fit",
    "skinny-fit",
    "regular-fit",
    "relaxed-fit",
    "oversized",
    // model numbering ("Smash II Sneakers")
    "ii",
    "iii",
    "iv",
];

fn has(list: &[&str], w: &str) -> bool {
    list.contains(&w)
}

fn normalize(w: &str) -> String {
    w.to_lowercase().replace('’', "'")
}

/// A word of letters (and inner `-`, `'`, `.`, combining marks), starting with a letter.
fn is_alpha(w: &str) -> bool {
    w.chars().next().is_some_and(char::is_alphabetic)
        && w.chars()
            .all(|c| !c.is_numeric() && (!c.is_ascii_punctuation() || "-'.".contains(c)))
}

fn is_noise(w: &str) -> bool {
    w.chars().any(char::is_numeric) || has(UNIT_WORDS, w) || !w.chars().any(char::is_alphanumeric)
}

/// Thresholds for fitting the type lexicon (see the module documentation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelerConfig {
    pub min_head_titles: usize,
    pub min_compound_titles: usize,
    pub min_brands: usize,
    pub min_modifier_share: f64,
    pub min_extension_share: f64,
}

impl Default for LabelerConfig {
    fn default() -> Self {
        LabelerConfig {
            min_head_titles: 3,
            min_compound_titles: 5,
            min_brands: 2,
            min_modifier_share: 0.5,
            min_extension_share: 0.8,
        }
    }
}

/// Lexicons fitted on a catalog; labels titles with BRAND, GENDER, COLOR and TYPE.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Labeler {
    colours: BTreeSet<String>,
    heads: BTreeSet<String>,
    /// Two- and three-word type compounds, lowercased words.
    compounds: BTreeSet<Vec<String>>,
}

/// Normalised words of one title with its brand boundary.
struct Title {
    words: Vec<String>,
    brand_end: usize,
}

impl Labeler {
    /// Fits the lexicons with the default thresholds.
    pub fn fit(items: &[CatalogItem]) -> Labeler {
        Self::fit_with(items, &LabelerConfig::default())
    }

    /// Fits the lexicons with explicit thresholds (small test catalogs need lower ones).
    pub fn fit_with(items: &[CatalogItem], config: &LabelerConfig) -> Labeler {
        let mut colours: BTreeSet<String> = BASE_COLOURS.iter().map(|c| c.to_string()).collect();
        for item in items {
            for w in item
                .colour
                .split(|c: char| c.is_whitespace() || "&/,".contains(c))
            {
                let w = normalize(w);
                if w.chars().count() >= 3 && is_alpha(&w) && !has(COLOUR_DENY, &w) {
                    colours.insert(w);
                }
            }
        }
        let mut lab = Labeler {
            colours,
            heads: BTreeSet::new(),
            compounds: BTreeSet::new(),
        };
        let titles: Vec<(Title, String)> = items
            .iter()
            .map(|i| (lab.title(&i.title, &i.brand), normalize(i.brand.trim())))
            .collect();
        lab.heads = lab.fit_heads(&titles, config);
        lab.compounds = lab.fit_compounds(&titles, config);
        lab
    }

    fn fit_heads(&self, titles: &[(Title, String)], cfg: &LabelerConfig) -> BTreeSet<String> {
        #[derive(Default)]
        struct HeadStat<'a> {
            titles: usize,
            brands: BTreeSet<&'a str>,
            before: HashMap<&'a str, usize>,
        }
        let mut stats: BTreeMap<&str, HeadStat> = BTreeMap::new();
        for (t, brand) in titles {
            let (s, e) = self.region(t, false);
            if e == s {
                continue;
            }
            let w = t.words[e - 1].as_str();
            if !is_alpha(w) || self.is_excluded(w) {
                continue;
            }
            let st = stats.entry(w).or_default();
            st.titles += 1;
            st.brands.insert(brand.as_str());
            let prev = if e - 1 > s {
                t.words[e - 2].as_str()
            } else {
                ""
            };
            *st.before.entry(prev).or_default() += 1;
        }
        let frequent = |n: usize| n >= cfg.min_head_titles;
        let multi: BTreeSet<&str> = stats
            .iter()
            .filter(|(_, st)| frequent(st.titles) && st.brands.len() >= cfg.min_brands)
            .map(|(w, _)| *w)
            .collect();
        stats
            .iter()
            .filter(|(w, st)| {
                multi.contains(*w) || {
                    let after_head: usize = st
                        .before
                        .iter()
                        .filter(|(p, _)| multi.contains(*p))
                        .map(|(_, n)| n)
                        .sum();
                    frequent(st.titles) && 2 * after_head < st.titles
                }
            })
            .map(|(w, _)| w.to_string())
            .collect()
    }

    fn fit_compounds(
        &self,
        titles: &[(Title, String)],
        cfg: &LabelerConfig,
    ) -> BTreeSet<Vec<String>> {
        type Stat<'a> = (usize, BTreeSet<&'a str>);
        let mut pairs: BTreeMap<[&str; 2], Stat> = BTreeMap::new();
        let mut triples: BTreeMap<[&str; 3], Stat> = BTreeMap::new();
        let mut before_head: HashMap<&str, usize> = HashMap::new();
        for (t, brand) in titles {
            let (s, e) = self.region(t, true);
            let Some(h) = self.head_pos(t, s, e) else {
                continue;
            };
            let w = &t.words;
            if h > s {
                *before_head.entry(&w[h - 1]).or_default() += 1;
                let st = pairs.entry([&w[h - 1], &w[h]]).or_default();
                st.0 += 1;
                st.1.insert(brand);
            }
            if h > s + 1 {
                let st = triples.entry([&w[h - 2], &w[h - 1], &w[h]]).or_default();
                st.0 += 1;
                st.1.insert(brand);
            }
        }
        let enough = |st: &Stat| st.0 >= cfg.min_compound_titles && st.1.len() >= cfg.min_brands;
        let mut out = BTreeSet::new();
        for (k, st) in &pairs {
            let share = st.0 as f64 / before_head.get(k[0]).copied().unwrap_or(1).max(1) as f64;
            if enough(st) && share >= cfg.min_modifier_share && self.is_modifier(k[0]) {
                out.insert(k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            }
        }
        for (k, st) in &triples {
            let Some(pair) = pairs.get(&[k[1], k[2]]) else {
                continue;
            };
            let pair_ok = out.contains(&vec![k[1].to_string(), k[2].to_string()]);
            let share = st.0 as f64 / pair.0.max(1) as f64;
            if pair_ok && enough(st) && share >= cfg.min_extension_share && self.is_modifier(k[0]) {
                out.insert(k.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            }
        }
        out
    }

    /// The colour lexicon (lowercase).
    pub fn colours(&self) -> impl Iterator<Item = &str> {
        self.colours.iter().map(String::as_str)
    }

    /// The type-head lexicon (lowercase single words).
    pub fn type_heads(&self) -> impl Iterator<Item = &str> {
        self.heads.iter().map(String::as_str)
    }

    /// The two- and three-word type compounds, words joined by a space.
    pub fn type_compounds(&self) -> impl Iterator<Item = String> + '_ {
        self.compounds.iter().map(|c| c.join(" "))
    }

    /// IOB2 tags aligned with `split_words(&item.title)`.
    pub fn label(&self, item: &CatalogItem) -> Vec<String> {
        self.label_title(&item.title, &item.brand)
    }

    /// IOB2 tags for a title and its brand, aligned with `split_words(title)`.
    pub fn label_title(&self, title: &str, brand: &str) -> Vec<String> {
        let t = self.title(title, brand);
        let w = &t.words;
        let n = w.len();
        let mut tags = vec![String::from("O"); n];
        let put = |tags: &mut Vec<String>, s: usize, e: usize, label: &str| {
            if (s..e).all(|i| tags[i] == "O") {
                for (i, tag) in tags.iter_mut().enumerate().take(e).skip(s) {
                    *tag = format!("{}-{label}", if i == s { "B" } else { "I" });
                }
            }
        };
        put(&mut tags, 0, t.brand_end, "BRAND");

        let gender_at = |i: usize| has(GENDER_WORDS, &w[i]) && !self.colour_modifier_at(w, i);
        if let Some(g) = (t.brand_end..n).find(|&i| gender_at(i)) {
            let end = (g + 1..n).find(|&i| !gender_at(i)).unwrap_or(n);
            put(&mut tags, g, end, "GENDER");
        }

        let (s, e) = self.region(&t, true);
        if let Some(h) = self.head_pos(&t, s, e) {
            let compound = |k: usize| h >= s + k && self.compounds.contains(&w[h - k..=h]);
            let start = if compound(1) && compound(2) {
                h - 2
            } else if compound(1) {
                h - 1
            } else {
                h
            };
            put(&mut tags, start, h + 1, "TYPE");
        } else if e > s && is_alpha(&w[e - 1]) && !self.is_excluded(&w[e - 1]) {
            put(&mut tags, e - 1, e, "TYPE");
        }

        let mut i = t.brand_end;
        while i < n {
            let colour_at = |tags: &[String], j: usize| {
                tags[j] == "O"
                    && (self.is_colour(&w[j])
                        || (self.colour_modifier_at(w, j) && tags[j + 1] == "O"))
            };
            if colour_at(&tags, i) {
                let end = (i + 1..n).find(|&j| !colour_at(&tags, j)).unwrap_or(n);
                put(&mut tags, i, end, "COLOR");
                i = end;
            } else {
                i += 1;
            }
        }
        tags
    }

    fn title(&self, title: &str, brand: &str) -> Title {
        let words: Vec<String> = split_words(title)
            .iter()
            .map(|w| normalize(&w.text))
            .collect();
        let brand: Vec<String> = split_words(brand)
            .iter()
            .map(|w| normalize(&w.text))
            .collect();
        let brand_end = self.brand_len(&words, &brand);
        Title { words, brand_end }
    }

    fn brand_len(&self, words: &[String], brand: &[String]) -> usize {
        if brand.is_empty() {
            return 0;
        }
        if words.starts_with(brand) {
            return brand.len();
        }
        let alnum = |s: &str| {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        };
        let target: String = brand.iter().map(|b| alnum(b)).collect();
        let mut acc = String::new();
        for (i, w) in words.iter().enumerate() {
            acc.push_str(&alnum(w));
            if !target.is_empty() && acc == target {
                return i + 1;
            }
            if !target.starts_with(&acc) {
                break;
            }
        }
        let mut common = words.iter().zip(brand).take_while(|(a, b)| a == b).count();
        while common > 0 && !words[common - 1].chars().any(char::is_alphanumeric) {
            common -= 1;
        }
        if common > 0 && (self.is_colour(&words[0]) || has(GENDER_WORDS, &words[0])) {
            return 0;
        }
        common
    }

    fn is_colour(&self, w: &str) -> bool {
        if self.colours.contains(w) {
            return true;
        }
        let mut parts = w.split('-');
        match (parts.next(), w.contains('-')) {
            (Some(first), true) if self.colours.contains(first) => {
                parts.all(|p| self.colours.contains(p) || has(COLOUR_SUFFIXES, p))
            }
            _ => false,
        }
    }

    /// `w[i]` is a colour modifier directly followed by a colour word.
    fn colour_modifier_at(&self, w: &[String], i: usize) -> bool {
        has(COLOUR_MODIFIERS, &w[i]) && w.get(i + 1).is_some_and(|n| self.is_colour(n))
    }

    fn is_excluded(&self, w: &str) -> bool {
        has(GENDER_WORDS, w)
            || self.is_colour(w)
            || has(CLAUSE_WORDS, w)
            || has(FUNCTION_WORDS, w)
            || has(ATTRIBUTES, w)
    }

    fn is_modifier(&self, w: &str) -> bool {
        is_alpha(w) && !self.is_excluded(w)
    }

    /// A final colour word that names a product because a plain word precedes it.
    fn noun_colour_at(&self, w: &[String], s: usize, i: usize) -> bool {
        has(NOUN_COLOURS, &w[i]) && i > s && is_alpha(&w[i - 1]) && !self.is_excluded(&w[i - 1])
    }

    /// Rule 2: the end of the region after stripping trailing noise and colours.
    fn strip(&self, w: &[String], s: usize, mut e: usize) -> usize {
        let mut right_was_colour = false;
        while e > s {
            let x = &w[e - 1];
            if self.noun_colour_at(w, s, e - 1) {
                break;
            }
            let colour = self.is_colour(x);
            let drop = is_noise(x)
                || colour
                || x == "and"
                || (right_was_colour && has(COLOUR_MODIFIERS, x));
            if !drop {
                break;
            }
            right_was_colour = colour;
            e -= 1;
        }
        e
    }

    /// Rule 1 and 2: the TYPE region `[s, e)` of a title. Before the head lexicon exists
    /// (`use_heads == false`) the region is cut at the first clause word.
    fn region(&self, t: &Title, use_heads: bool) -> (usize, usize) {
        let (w, s) = (&t.words, t.brand_end);
        let mut cuts = (s + 1..w.len())
            .filter(|&i| has(CLAUSE_WORDS, &w[i]))
            .map(|i| self.strip(w, s, i));
        let first_cut = cuts.next();
        let full = self.strip(w, s, w.len());
        let with_head = |e: &usize| self.head_pos(t, s, *e).is_some();
        let e = if !use_heads {
            first_cut.unwrap_or(full)
        } else {
            first_cut
                .into_iter()
                .chain(cuts)
                .find(with_head)
                .or(Some(full).filter(with_head))
                .or(first_cut)
                .unwrap_or(full)
        };
        (s, e)
    }

    /// Rule 3: index of the type head in region `[s, e)`.
    fn head_pos(&self, t: &Title, s: usize, e: usize) -> Option<usize> {
        let w = &t.words;
        let is_head = |i: usize| self.heads.contains(&w[i]) || self.noun_colour_at(w, s, i);
        if e > s && is_head(e - 1) {
            Some(e - 1)
        } else if e > s + 1 && self.heads.contains(&w[e - 2]) {
            Some(e - 2)
        } else {
            None
        }
    }
}

/// How many titles carry each entity type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Coverage {
    pub entity_type: String,
    /// Titles with at least one entity of this type.
    pub titles_with: usize,
    /// All titles.
    pub titles: usize,
    /// Entities of this type over all titles.
    pub entities: usize,
}

/// Coverage per entity type: the four [`ENTITY_TYPES`] always, plus any other type present.
pub fn coverage(tag_sequences: &[Vec<String>]) -> Vec<Coverage> {
    let mut per: BTreeMap<String, (usize, usize)> = ENTITY_TYPES
        .iter()
        .map(|t| (t.to_string(), (0, 0)))
        .collect();
    for seq in tag_sequences {
        let spans = spans_from_iob2(seq);
        let types: BTreeSet<&str> = spans.iter().map(|s| s.label.as_str()).collect();
        for s in &spans {
            per.entry(s.label.clone()).or_default().1 += 1;
        }
        for t in types {
            per.entry(t.to_string()).or_default().0 += 1;
        }
    }
    per.into_iter()
        .map(|(entity_type, (titles_with, entities))| Coverage {
            entity_type,
            titles_with,
            titles: tag_sequences.len(),
            entities,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: usize, title: &str, brand: &str, colour: &str) -> CatalogItem {
        CatalogItem {
            id: id.to_string(),
            title: title.into(),
            brand: brand.into(),
            gender: String::new(),
            colour: colour.into(),
            description: String::new(),
            line: id + 1,
        }
    }

    /// An invented catalog big enough for thresholds of 2.
    fn catalog() -> Vec<CatalogItem> {
        let rows = [
            (
                "Urban Loom Men Navy Blue Slim Fit Checked Casual Shirt",
                "Urban Loom",
                " Navy Blue",
            ),
            ("Parkline Men White Solid Casual Shirt", "Parkline", "White"),
            ("Parkline Men Grey Printed Casual Shirt", "Parkline", "Grey"),
            (
                "Kesar Looms Women Beige & Maroon Printed Kurta Set with Jacket",
                "Kesar Looms",
                "Beige",
            ),
            (
                "Rangoli Women Green Kurta Set with Dupatta",
                "Rangoli",
                "Green",
            ),
            ("Rangoli Women Teal Straight Kurta", "Rangoli", "Teal"),
            ("Desi Threads Men Rust Solid Kurta", "Desi Threads", "Rust"),
            ("Trekko Unisex Black Medium Trolley Bag", "Trekko", "Black"),
            ("Voyagr Unisex Blue Large Trolley Bag", "Voyagr", "Blue"),
            ("Stridex Men Running Shoes", "Stridex", ""),
            ("Fleetfoot Women Pink Running Shoes", "Fleetfoot", "Pink"),
            ("Sonata Men Grey Analogue Watch 7128NL02", "Sonata", "Grey"),
            (
                "Timex Women Gold-Toned Analogue Watch TW00ZR",
                "Timex",
                "Gold",
            ),
            ("Lacy Women Pack of 2 T-shirt Bras Afreen", "Lacy", "Pink"),
            ("Lacy Women Pack of 2 Padded Bras Afreen", "Lacy", "Black"),
            ("Comfy Women Black Non-Padded Bras", "Comfy", "Black"),
            ("Snugfit Women Everyday Bras", "Snugfit", "White"),
            ("Aroma Vale Unisex Eau de Parfum 100 ml", "Aroma Vale", ""),
            ("Fragrantia Men Eau de Parfum 50ml", "Fragrantia", ""),
            (
                "U.S.Polo Assn. Kids Boys Red Joggers",
                "U.S. Polo Assn. Kids",
                "Red",
            ),
            (
                "HRX Boys Black Printed Joggers",
                "HRX by Hrithik Roshan",
                "Black",
            ),
            ("Black Synthetic Sandals", "Beli", "Black"),
            ("Tiny Tots Baby Pink Solid Romper", "Tiny Tots", "Pink"),
            ("Glowy Unisex Age Reversal Night Cream 50gm", "Glowy", ""),
            (
                "Goldfinch Women Gold-Plated Contemporary Drop Earrings",
                "Goldfinch",
                "Gold",
            ),
            (
                "Tristar Boys Navy Blue Solid Tshirt for Boys",
                "Tristar",
                "Navy Blue",
            ),
        ];
        rows.iter()
            .enumerate()
            .map(|(i, (t, b, c))| item(i, t, b, c))
            .collect()
    }

    fn config() -> LabelerConfig {
        LabelerConfig {
            min_head_titles: 2,
            min_compound_titles: 2,
            ..LabelerConfig::default()
        }
    }

    /// Non-`O` words as `word/TAG`, for readable expectations.
    fn show(lab: &Labeler, title: &str, brand: &str) -> String {
        let words = split_words(title);
        let tags = lab.label_title(title, brand);
        assert_eq!(tags.len(), words.len());
        words
            .iter()
            .zip(&tags)
            .filter(|(_, t)| *t != "O")
            .map(|(w, t)| format!("{}/{t}", w.text))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn fitted_lexicons() {
        let lab = Labeler::fit_with(&catalog(), &config());
        let heads: Vec<&str> = lab.type_heads().collect();
        for h in [
            "shirt", "kurta", "set", "bag", "shoes", "watch", "bras", "parfum", "joggers",
        ] {
            assert!(heads.contains(&h), "{h} missing from {heads:?}");
        }
        assert!(
            !heads.contains(&"afreen"),
            "style name taken as a type head"
        );
        let compounds: Vec<String> = lab.type_compounds().collect();
        for c in [
            "casual shirt",
            "kurta set",
            "trolley bag",
            "running shoes",
            "analogue watch",
        ] {
            assert!(
                compounds.iter().any(|x| x == c),
                "{c} missing from {compounds:?}"
            );
        }
        assert!(
            compounds.iter().any(|x| x == "eau de parfum"),
            "{compounds:?}"
        );
        assert!(!compounds
            .iter()
            .any(|x| x.starts_with("medium") || x.starts_with("printed")));
        assert!(lab.colours().any(|c| c == "teal"));
        assert_eq!(
            lab,
            Labeler::fit_with(&catalog(), &config()),
            "deterministic"
        );
    }

    #[test]
    fn labels_invented_titles() {
        let lab = Labeler::fit_with(&catalog(), &config());
        let cases = [
            (
                "Urban Loom Men Navy Blue Slim Fit Checked Casual Shirt",
                "Urban Loom",
                "Urban/B-BRAND Loom/I-BRAND Men/B-GENDER Navy/B-COLOR Blue/I-COLOR \
                 Casual/B-TYPE Shirt/I-TYPE",
            ),
            (
                "Kesar Looms Women Beige & Maroon Printed Kurta Set with Jacket",
                "Kesar Looms",
                "Kesar/B-BRAND Looms/I-BRAND Women/B-GENDER Beige/B-COLOR Maroon/B-COLOR \
                 Kurta/B-TYPE Set/I-TYPE",
            ),
            // no colour at all
            ("Stridex Men Running Shoes", "Stridex", "Stridex/B-BRAND Men/B-GENDER Running/B-TYPE Shoes/I-TYPE"),
            (
                "Aroma Vale Unisex Eau de Parfum 100 ml",
                "Aroma Vale",
                "Aroma/B-BRAND Vale/I-BRAND Unisex/B-GENDER Eau/B-TYPE de/I-TYPE Parfum/I-TYPE",
            ),
            // attribute words do not start a TYPE
            ("Rangoli Women Teal Straight Kurta", "Rangoli", "Rangoli/B-BRAND Women/B-GENDER Teal/B-COLOR Kurta/B-TYPE"),
            // trailing model code, hyphenated colour
            (
                "Timex Women Gold-Toned Analogue Watch TW00ZR",
                "Timex",
                "Timex/B-BRAND Women/B-GENDER Gold-Toned/B-COLOR Analogue/B-TYPE Watch/I-TYPE",
            ),
            // style name after the head
            ("Lacy Women Pack of 2 Padded Bras Afreen", "Lacy", "Lacy/B-BRAND Women/B-GENDER Bras/B-TYPE"),
            // brand written differently, brand prefix only, brand absent
            (
                "U.S.Polo Assn. Kids Boys Red Joggers",
                "U.S. Polo Assn. Kids",
                "U.S.Polo/B-BRAND Assn/I-BRAND ./I-BRAND Kids/I-BRAND Boys/B-GENDER Red/B-COLOR Joggers/B-TYPE",
            ),
            ("HRX Boys Black Printed Joggers", "HRX by Hrithik Roshan", "HRX/B-BRAND Boys/B-GENDER Black/B-COLOR Joggers/B-TYPE"),
            ("Black Synthetic Sandals", "Beli", "Black/B-COLOR Sandals/B-TYPE"),
            // "Baby" before a colour is part of the colour; unknown final word is the TYPE
            ("Tiny Tots Baby Pink Solid Romper", "Tiny Tots", "Tiny/B-BRAND Tots/I-BRAND Baby/B-COLOR Pink/I-COLOR Romper/B-TYPE"),
            // a final "Cream" after a plain word is a product
            (
                "Glowy Unisex Age Reversal Night Cream 50gm",
                "Glowy",
                "Glowy/B-BRAND Unisex/B-GENDER Cream/B-TYPE",
            ),
            // plating is a material, not a colour
            (
                "Goldfinch Women Gold-Plated Contemporary Drop Earrings",
                "Goldfinch",
                "Goldfinch/B-BRAND Women/B-GENDER Earrings/B-TYPE",
            ),
            // "for" clause cut; only the first gender run is tagged
            (
                "Tristar Boys Navy Blue Solid Tshirt for Boys",
                "Tristar",
                "Tristar/B-BRAND Boys/B-GENDER Navy/B-COLOR Blue/I-COLOR Tshirt/B-TYPE",
            ),
        ];
        for (title, brand, want) in cases {
            assert_eq!(show(&lab, title, brand), *want, "{title}");
        }
        // curly possessive gender; colour modifier "Off"
        let got = show(&lab, "Acme Men’s Off White Casual Shirt", "Acme");
        assert_eq!(
            got,
            "Acme/B-BRAND Men’s/B-GENDER Off/B-COLOR White/I-COLOR Casual/B-TYPE Shirt/I-TYPE"
        );
    }

    #[test]
    fn odd_titles_do_not_panic() {
        let lab = Labeler::fit(&catalog());
        for (t, b) in [
            ("", ""),
            ("   ", "Acme"),
            ("Acme", "Acme"),
            ("😀 ✨ नमस्ते 优衣库", "😀"),
            ("with with for in", "with"),
            ("- & / 100 ml", ""),
            ("Baby", "Acme"),
            ("Acme Cream", "Acme"),
        ] {
            assert_eq!(lab.label_title(t, b).len(), split_words(t).len(), "{t}");
        }
        assert!(Labeler::fit(&[]).label_title("Acme Red Shirt", "Acme")[1] == "B-COLOR");
    }

    #[test]
    fn labels_the_fixture_catalog() {
        let text = include_str!("../../../tests/fixtures/catalog_small.csv");
        let items = crate::catalog::read_catalog("catalog_small.csv", text)
            .unwrap()
            .items;
        let lab = Labeler::fit_with(
            &items,
            &LabelerConfig {
                min_head_titles: 1,
                ..config()
            },
        );
        let tags: Vec<Vec<String>> = items.iter().map(|i| lab.label(i)).collect();
        for (i, t) in items.iter().zip(&tags) {
            assert_eq!(t.len(), split_words(&i.title).len());
            assert_eq!(t[0], "B-BRAND", "{}", i.title);
        }
        let cov = coverage(&tags);
        let get = |ty: &str| cov.iter().find(|c| c.entity_type == ty).unwrap();
        assert_eq!(get("BRAND").titles_with, 12);
        assert_eq!(get("TYPE").titles_with, 12);
        assert_eq!(get("GENDER").titles_with, 11, "HomeNest has no gender word");
        assert_eq!(
            get("COLOR").titles_with,
            10,
            "the parfum and the cushion covers have none"
        );
        assert_eq!(
            show(&lab, &items[4].title, &items[4].brand),
            "Desi/B-BRAND Threads/I-BRAND Men/B-GENDER Off-White/B-COLOR Kurta/B-TYPE"
        );
    }

    #[test]
    fn coverage_counts() {
        let s = |t: &[&str]| t.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let seqs = vec![
            s(&["B-BRAND", "B-COLOR", "O", "B-COLOR"]),
            s(&["O", "I-TYPE", "B-X"]),
        ];
        let cov = coverage(&seqs);
        let names: Vec<&str> = cov.iter().map(|c| c.entity_type.as_str()).collect();
        assert_eq!(names, ["BRAND", "COLOR", "GENDER", "TYPE", "X"]);
        assert_eq!(
            (cov[1].titles_with, cov[1].entities, cov[1].titles),
            (1, 2, 2)
        );
        assert_eq!(
            (cov[3].titles_with, cov[3].entities),
            (0, 0),
            "dangling I- is no entity"
        );
    }
}
