//! Stop sequences: texts that end a reply where they first appear. Generated text passes
//! through [`StopText`], which holds back only what could still turn out to be the start of a
//! stop sequence, so a streamed reply never shows a stop sequence or any part of one.

/// Watches generated text for the first occurrence of any stop sequence.
#[derive(Debug, Default)]
pub(crate) struct StopText {
    stops: Vec<String>,
    /// Text received but not yet released: a suffix that is a prefix of some stop sequence.
    held: String,
}

/// What [`StopText::push`] lets through.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Released {
    /// Text that is certainly part of the reply.
    pub text: String,
    /// A stop sequence was found: `text` ends where it began, and the reply is over.
    pub stopped: bool,
}

impl StopText {
    /// Empty stop sequences are ignored (they would end every reply before it began).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds `piece` and returns the text that can be released.
    pub fn push(&mut self, piece: &str) -> Released {
        if self.stops.is_empty() {
            return Released {
                text: piece.to_owned(),
                stopped: false,
            };
        }
        self.held.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            self.held.truncate(at);
            return Released {
                text: std::mem::take(&mut self.held),
                stopped: true,
            };
        }
        let keep = self.partial_suffix();
        let text = self.held[..self.held.len() - keep].to_owned();
        self.held.drain(..self.held.len() - keep);
        Released {
            text,
            stopped: false,
        }
    }

    /// The text still held back, released when the reply ends without a stop sequence.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of `held` that begins some stop sequence (the whole
    /// sequence is not in `held`, or `push` would have found it).
    fn partial_suffix(&self) -> usize {
        let held = &self.held;
        (1..=held.len())
            .rev()
            .filter(|&n| held.is_char_boundary(held.len() - n))
            .find(|&n| {
                let tail = &held[held.len() - n..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut st = StopText::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let r = st.push(p);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&st.finish());
        (out, false)
    }

    #[test]
    fn stops_at_the_first_occurrence_across_pieces() {
        assert_eq!(
            run(&["END"], &["abc E", "N", "D more"]),
            ("abc ".into(), true)
        );
        assert_eq!(
            run(&["\n\n", "##"], &["a\n", "b#", "#c"]),
            ("a\nb".into(), true)
        );
        // The earliest match wins, whichever sequence it is.
        assert_eq!(run(&["zz", "b"], &["abzz"]), ("a".into(), true));
        assert_eq!(run(&["x"], &["x"]), (String::new(), true));
    }

    #[test]
    fn releases_what_cannot_start_a_stop_sequence() {
        let stops = vec!["STOP".to_string()];
        let mut st = StopText::new(&stops);
        assert_eq!(st.push("hello ST").text, "hello ");
        assert!(st.push("OP").stopped);
        let mut st = StopText::new(&stops);
        assert_eq!(st.push("ST").text, "");
        // "STX" cannot be the start of "STOP" any more: all of it goes out.
        assert_eq!(st.push("X").text, "STX");
        assert_eq!(st.push("S").text, "");
        assert_eq!(st.finish(), "S");
    }

    #[test]
    fn no_stop_sequences_and_multibyte_text() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&[""], &["a"]), ("a".into(), false));
        assert_eq!(run(&["éé"], &["aé", "b", "é", "é!"]), ("aéb".into(), true));
        assert_eq!(run(&["日本"], &["日", "日本語"]), ("日".into(), true));
        assert_eq!(run(&["日本"], &["語日"]), ("語日".into(), false));
    }
}
