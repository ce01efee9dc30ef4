//! Source locations: the one mapping from a byte offset in an intent file to
//! a 1-based line and column (in characters), as diagnostics, the IR's policy
//! infos and [`Intent::location`](crate::model::Intent::location) report them.
//! Lines end at `\n`; an offset past the end of a text counts as its end.

use crate::model::{SourceFile, Span};

/// A text's line starts, so locating an offset is a binary search instead of
/// a scan from the start of the text.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// The last offset located and its column: consecutive offsets on one
    /// line (sorted diagnostics) count characters on from it.
    last: (usize, u32),
}

impl LineIndex {
    /// Index `text`.
    pub fn new(text: &str) -> Self {
        LineIndex {
            starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            last: (0, 1),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }

    /// 1-based line and column of a byte offset of `text`, the text indexed.
    pub fn line_col(&mut self, text: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let line = self.line(offset);
        let line_start = self.starts[line as usize - 1];
        let (from, col) = if self.last.0 >= line_start && self.last.0 <= offset {
            self.last
        } else {
            (line_start, 1)
        };
        let col = col + text[from..offset].chars().count() as u32;
        self.last = (offset, col);
        (line, col)
    }
}

/// Locations in a set of files, each file indexed on first use.
#[derive(Debug, Default)]
pub struct Locator {
    files: Vec<Option<LineIndex>>,
}

impl Locator {
    /// Path, 1-based line and column of a span's start; `None` if its file is
    /// not in `files` (which must be the same files on every call).
    pub fn locate<'f>(
        &mut self,
        files: &'f [SourceFile],
        span: Span,
    ) -> Option<(&'f str, u32, u32)> {
        let f = files.get(span.file)?;
        if self.files.len() <= span.file {
            self.files.resize_with(span.file + 1, || None);
        }
        let index = self.files[span.file].get_or_insert_with(|| LineIndex::new(&f.text));
        let (line, col) = index.line_col(&f.text, span.offset);
        Some((&f.path, line, col))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line and column by counting from the start of the text.
    fn scanned(text: &str, offset: usize) -> (u32, u32) {
        let before = &text[..offset.min(text.len())];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line as u32, col as u32)
    }

    #[test]
    fn locates_as_counting_from_the_start() {
        let text = "scope \"é-scope\" {\n  query { namespace \"ünï\" }\n\n}\r\nx";
        let offsets: Vec<usize> = (0..=text.len() + 2)
            .filter(|&o| o > text.len() || text.is_char_boundary(o))
            .collect();
        let mut index = LineIndex::new(text);
        // In order (counting on from the last), then backwards (from the line start).
        for &o in offsets.iter().chain(offsets.iter().rev()) {
            assert_eq!(index.line_col(text, o), scanned(text, o), "at {o}");
            assert_eq!(index.line(o.min(text.len())), scanned(text, o).0, "at {o}");
        }
    }
}
