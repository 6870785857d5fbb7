//! A grammar matched at the start of its input, where only the end of the
//! match is wanted: the address's locality after a street, its units.
//!
//! `regex::bytes::Regex` compiles three automata for such a pattern (a
//! forward one with groups, a reverse one to find where a match starts,
//! and the engines over them). A match anchored at the start needs only the
//! forward lazy DFA, which costs a third of the time to build: the address
//! grammar's Unicode letter classes made building it most of the
//! detector's start-up.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

/// Makes a search cache for one thread.
type NewCache =
    Box<dyn Fn() -> Cache + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

/// A pattern matched only at the start of its input, with the
/// leftmost-first semantics of `regex`.
pub(crate) struct Grammar {
    dfa: DFA,
    /// Each thread searching takes a cache and gives it back.
    caches: Pool<Cache, NewCache>,
}

impl Grammar {
    /// Compiles `pattern` (the syntax of `regex::bytes`).
    pub(crate) fn new(pattern: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let nfa = thompson::Compiler::new()
            .syntax(syntax::Config::new().utf8(false))
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .which_captures(WhichCaptures::None),
            )
            .build(pattern)?;
        let dfa = DFA::builder().build_from_nfa(nfa)?;
        let for_caches = dfa.clone();
        Ok(Self {
            dfa,
            caches: Pool::new(Box::new(move || for_caches.create_cache())),
        })
    }

    /// Where the match at the start of `haystack` ends, if there is one.
    pub(crate) fn match_end(&self, haystack: &[u8]) -> Option<usize> {
        let mut cache = self.caches.get();
        let input = Input::new(haystack).anchored(Anchored::Yes);
        self.dfa
            .try_search_fwd(&mut cache, &input)
            // The lazy DFA gives up only when told to (never here) or on a
            // Unicode word boundary (the grammars use ASCII ones).
            .expect("an anchored lazy DFA search")
            .map(|m| m.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end is where `regex` ends the same match, for matches that
    /// stop early, run long, or are not there.
    #[test]
    fn ends_where_regex_ends_the_match() {
        let pattern = r"^(?:,[ \t]*\p{Lu}\p{Ll}+){0,2}(?:[ \t]+\d{5}(?-u:\b)|,? (?:Ave|Avenue))";
        let grammar = Grammar::new(pattern).unwrap();
        let reference = regex::bytes::Regex::new(pattern).unwrap();
        for hay in [
            ", Zürich 80331 and more",
            ", Ciudad, Élan 12345",
            " 12345",
            " 123456",
            ", Ave",
            " Avenue and on",
            "x, Paris 75001",
            "",
            ", München,",
        ] {
            assert_eq!(
                grammar.match_end(hay.as_bytes()),
                reference.find(hay.as_bytes()).map(|m| m.end()),
                "{hay:?}"
            );
        }
    }
}
