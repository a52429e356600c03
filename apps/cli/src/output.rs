//! Standard output that treats a closed pipe (`voyager info | head`) as a normal end.

use std::io::{ErrorKind, Write};

/// Writes `text` and a newline to stdout; a reader that went away is not an error.
pub fn line(text: impl AsRef<str>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", text.as_ref()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `println!` that returns instead of panicking on a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format!($($arg)*))?
    };
}
