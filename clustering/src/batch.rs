//! Batch mode: many messages in, one template or cluster id per message out.
//!
//! What `faultline cluster` runs. Messages are pushed in order; each costs a masking pass and
//! one look-up (new shapes also keep their first message as a sample). [`Batch::finish`]
//! consolidates the templates and, at the cluster level, runs DBSCAN once over the roots, then
//! gives every message the id of its final template or cluster, so that a message seen before
//! a merge gets the same id as one seen after it.
//!
//! Bounds: at most [`MAX_BATCH_SHAPES`] distinct shapes are kept (or fewer,
//! [`Batch::with_max_shapes`]), with one sample message each, cut to the message limit; the
//! messages of later new shapes get the id
//! `ffffffffffffffff` ("other") and are counted in [`BatchIds::other_lines`]. Every root is
//! clustered, with no limit on their number (the earlier dense re-run stopped at the first
//! 5,000); a root whose neighbour search hit its bound is
//! counted in [`BatchIds::searches_cut`]. Besides those, memory is 4 bytes per message (its
//! shape's index, to write the ids in order at the end). Cluster ids are a function of the set
//! of shapes (see [`crate::cluster`]): the same lines in another order get the same ids.

use crate::cluster::{RootClusters, VectorParams};
use crate::mask::MaskedLine;
use crate::template::{shape_hash, KeyIndex, TemplateMiner};

/// Which grouping the ids name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLevel {
    /// Exact masked shape, generalised (a template).
    Template,
    /// Root kind of error (a cluster of templates).
    Cluster,
}

const EMPTY: KeyIndex = KeyIndex::MAX;
const OTHER: KeyIndex = KeyIndex::MAX - 1;

/// Most distinct shapes a batch keeps: a million shapes with a sample each is a few hundred
/// MB; no real log has that many kinds of message (the 16 Loghub systems have under 1,000
/// each), so reaching it means the masker missed a value, and the output says so.
pub const MAX_BATCH_SHAPES: usize = 1_000_000;

/// Accumulates messages and gives their ids at the end.
#[derive(Debug)]
pub struct Batch {
    level: GroupLevel,
    miner: TemplateMiner,
    masked: MaskedLine,
    line_keys: Vec<KeyIndex>,
    samples: Vec<Box<str>>,
    max_message_bytes: usize,
    params: VectorParams,
    max_shapes: usize,
    other_lines: usize,
}

/// The ids of a finished batch.
#[derive(Debug)]
pub struct BatchIds {
    key_ids: Vec<[u8; 16]>,
    line_keys: Vec<KeyIndex>,
    /// Number of templates (after consolidation).
    pub templates: usize,
    /// Number of clusters (at the cluster level; else 0).
    pub clusters: usize,
    /// Messages that got the "other" id because the shape bound ([`MAX_BATCH_SHAPES`], or
    /// [`Batch::with_max_shapes`]) was reached.
    pub other_lines: usize,
    /// The shape bound that applied.
    pub max_shapes: usize,
    /// Roots whose neighbour search stopped at its bound
    /// ([`MAX_CANDIDATES`](crate::cluster::MAX_CANDIDATES)).
    pub searches_cut: usize,
}

impl Batch {
    /// An empty batch; messages longer than `max_message_bytes` are cut (at a character
    /// boundary) before masking.
    pub fn new(
        level: GroupLevel,
        min_distinct: usize,
        max_message_bytes: usize,
        params: VectorParams,
    ) -> Self {
        Batch {
            level,
            miner: TemplateMiner::new(min_distinct),
            masked: MaskedLine::shapes_only(),
            line_keys: Vec::new(),
            samples: Vec::new(),
            max_message_bytes: max_message_bytes.max(16),
            params,
            max_shapes: MAX_BATCH_SHAPES,
            other_lines: 0,
        }
    }

    /// The same batch keeping at most `max_shapes` distinct shapes (at least 1) instead of
    /// [`MAX_BATCH_SHAPES`]: a lower memory bound, for machines that cannot spare hundreds of
    /// MB.
    pub fn with_max_shapes(mut self, max_shapes: usize) -> Self {
        self.max_shapes = max_shapes.max(1);
        self
    }

    /// The most distinct shapes this batch keeps.
    pub fn max_shapes(&self) -> usize {
        self.max_shapes
    }

    /// Number of messages pushed.
    pub fn len(&self) -> usize {
        self.line_keys.len()
    }

    /// Whether no message was pushed.
    pub fn is_empty(&self) -> bool {
        self.line_keys.is_empty()
    }

    /// Adds the next message (blank messages get the id of the empty template).
    pub fn push(&mut self, message: &str) {
        let message = cut(message, self.max_message_bytes);
        if message.trim().is_empty() {
            self.line_keys.push(EMPTY);
            return;
        }
        self.masked.mask(message);
        let key = match self.miner.find(&self.masked) {
            Some(k) => k,
            None if self.miner.key_count() >= self.max_shapes => {
                self.other_lines += 1;
                OTHER
            }
            None => {
                let (k, _) = self.miner.insert(&self.masked);
                if self.level == GroupLevel::Cluster {
                    self.samples.push(message.into());
                }
                k
            }
        };
        self.line_keys.push(key);
    }

    /// Adds a block of messages masked elsewhere ([`MaskedBlock::mask`], typically on a
    /// worker thread); blocks pushed in input order give exactly the ids that pushing their
    /// messages one by one gives.
    pub fn push_block(&mut self, block: &MaskedBlock) {
        // Shapes are resolved in their order of first occurrence, as `push` would meet them.
        let keys: Vec<KeyIndex> = block
            .shapes
            .iter()
            .map(|(hash, shape, message)| match self.miner.find_hash(*hash) {
                Some(k) => k,
                None if self.miner.key_count() >= self.max_shapes => OTHER,
                None => {
                    let k = self.miner.insert_hashed(*hash, shape);
                    if self.level == GroupLevel::Cluster {
                        self.samples.push(message.clone());
                    }
                    k
                }
            })
            .collect();
        for &line in &block.lines {
            let key = match line {
                BLANK_LINE => EMPTY,
                s => keys[s as usize],
            };
            if key == OTHER {
                self.other_lines += 1;
            }
            self.line_keys.push(key);
        }
    }

    /// Consolidates and assigns the final ids.
    pub fn finish(mut self) -> BatchIds {
        self.miner.consolidate();
        let keys = self.miner.key_count();
        let mut key_ids = Vec::with_capacity(keys);
        let templates = self.miner.template_count();
        let mut clusters = 0;
        let mut searches_cut = 0;
        match self.level {
            GroupLevel::Template => {
                for k in 0..keys as KeyIndex {
                    key_ids.push(hex16(self.miner.template_of(k).0 .0));
                }
            }
            GroupLevel::Cluster => {
                let mut rc = RootClusters::new(self.params);
                let roots: Vec<_> = self
                    .samples
                    .iter()
                    .map(|s| rc.insert_for_rerun(&crate::root::root_signature(s)))
                    .collect();
                let report = rc.rerun_reporting();
                clusters = report.clusters;
                searches_cut = report.searches_cut;
                for r in roots {
                    key_ids.push(hex16(rc.cluster_of(r).0));
                }
            }
        }
        BatchIds {
            key_ids,
            line_keys: self.line_keys,
            templates,
            clusters,
            other_lines: self.other_lines,
            max_shapes: self.max_shapes,
            searches_cut,
        }
    }
}

const BLANK_LINE: u32 = u32::MAX;

/// Messages masked off the batch's thread, for [`Batch::push_block`]: per message the index
/// of its shape among the block's distinct shapes, and each distinct shape once (first
/// occurrence first) with its hash and first message. Masking is most of a batch's work, so
/// masking blocks on several threads and pushing them in order uses several cores with the
/// output order preserved.
#[derive(Debug, Default)]
pub struct MaskedBlock {
    lines: Vec<u32>,
    shapes: Vec<(u128, Box<str>, Box<str>)>,
}

impl MaskedBlock {
    /// Masks `messages` (cut to `max_message_bytes` like [`Batch::push`] does).
    pub fn mask<'a>(messages: impl IntoIterator<Item = &'a str>, max_message_bytes: usize) -> Self {
        let mut masker = BlockMasker::new(max_message_bytes);
        for message in messages {
            masker.push(message);
        }
        masker.take()
    }

    /// Number of messages in the block.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the block holds no message.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Builds [`MaskedBlock`]s one message at a time, on a worker thread: for callers whose
/// messages are borrowed from a buffer only while they are pushed (lines decoded from a
/// chunk of bytes). Its masking buffers are reused from one block to the next.
#[derive(Debug)]
pub struct BlockMasker {
    max_message_bytes: usize,
    masked: MaskedLine,
    seen: std::collections::HashMap<u128, u32>,
    block: MaskedBlock,
}

impl BlockMasker {
    /// An empty block; messages are cut to `max_message_bytes` like [`Batch::push`] does.
    pub fn new(max_message_bytes: usize) -> Self {
        BlockMasker {
            max_message_bytes: max_message_bytes.max(16),
            masked: MaskedLine::shapes_only(),
            seen: std::collections::HashMap::new(),
            block: MaskedBlock::default(),
        }
    }

    /// Adds the next message of the block.
    pub fn push(&mut self, message: &str) {
        let message = cut(message, self.max_message_bytes);
        if message.trim().is_empty() {
            self.block.lines.push(BLANK_LINE);
            return;
        }
        self.masked.mask(message);
        let hash = shape_hash(&self.masked.text);
        let next = self.block.shapes.len() as u32;
        let index = *self.seen.entry(hash).or_insert(next);
        if index == next {
            self.block
                .shapes
                .push((hash, self.masked.text.as_str().into(), message.into()));
        }
        self.block.lines.push(index);
    }

    /// The block of the messages pushed since the last call; the masker starts a new one.
    pub fn take(&mut self) -> MaskedBlock {
        self.seen.clear();
        std::mem::take(&mut self.block)
    }
}

impl BatchIds {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.line_keys.len()
    }

    /// Whether there were no messages.
    pub fn is_empty(&self) -> bool {
        self.line_keys.is_empty()
    }

    /// The id of message `i` as 16 hex digits.
    pub fn id(&self, i: usize) -> &[u8; 16] {
        const EMPTY_ID: [u8; 16] = *b"0000000000000000";
        const OTHER_ID: [u8; 16] = *b"ffffffffffffffff";
        match self.line_keys[i] {
            EMPTY => &EMPTY_ID,
            OTHER => &OTHER_ID,
            k => &self.key_ids[k as usize],
        }
    }

    /// Writes one id per message, one per line, in order.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(1 << 16);
        for i in 0..self.len() {
            buf.extend_from_slice(self.id(i));
            buf.push(b'\n');
            if buf.len() >= (1 << 16) - 32 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_message_including_blank_ones() {
        let mut b = Batch::new(GroupLevel::Template, 5, 1 << 14, VectorParams::default());
        for m in ["a 1", "", "a 2", "b", "  "] {
            b.push(m);
        }
        let ids = b.finish();
        let mut out = Vec::new();
        ids.write_to(&mut out).unwrap();
        let lines: Vec<&[u8]> = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], lines[2]);
        assert_ne!(lines[0], lines[3]);
        assert_eq!(lines[1], lines[4]);
    }

    #[test]
    fn wrapper_text_does_not_split_a_cluster() {
        let mut b = Batch::new(GroupLevel::Cluster, 5, 1 << 14, VectorParams::default());
        b.push("failed to call user service: Get \"http://u/1\": EOF");
        b.push("GetUser(42): EOF");
        b.push("read: unexpected EOF");
        let ids = b.finish();
        assert_eq!(ids.id(0), ids.id(1));
        assert_ne!(ids.id(0), ids.id(2));
    }

    #[test]
    fn shapes_past_the_bound_are_other_and_counted() {
        let mut b =
            Batch::new(GroupLevel::Cluster, 5, 1 << 14, VectorParams::default()).with_max_shapes(2);
        for m in [
            "alpha failed",
            "beta failed",
            "gamma failed",
            "alpha failed",
        ] {
            b.push(m);
        }
        let ids = b.finish();
        assert_eq!(ids.other_lines, 1);
        assert_eq!(ids.id(2), b"ffffffffffffffff");
        assert_eq!(ids.id(0), ids.id(3));
    }

    #[test]
    fn blocks_masked_apart_give_the_ids_of_one_by_one() {
        let messages: Vec<String> = (0..300)
            .map(|i| match i % 5 {
                0 => format!("user u{} logged in from 10.0.0.{}", i % 7, i % 3),
                1 => String::new(),
                2 => format!("GetUser({i}): read: connection reset by peer"),
                3 => format!("cache {} missed", ["a", "b", "c", "d", "e", "f"][i % 6]),
                _ => "EOF".to_string(),
            })
            .collect();
        for level in [GroupLevel::Template, GroupLevel::Cluster] {
            let mut one = Batch::new(level, 5, 1 << 14, VectorParams::default());
            for m in &messages {
                one.push(m);
            }
            let mut blocks = Batch::new(level, 5, 1 << 14, VectorParams::default());
            for chunk in messages.chunks(37) {
                blocks.push_block(&MaskedBlock::mask(
                    chunk.iter().map(String::as_str),
                    1 << 14,
                ));
            }
            let (one, blocks) = (one.finish(), blocks.finish());
            assert_eq!(one.len(), blocks.len());
            for i in 0..one.len() {
                assert_eq!(one.id(i), blocks.id(i), "message {i} at {level:?}");
            }
        }
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(cut("ééé", 3), "é");
    }
}
