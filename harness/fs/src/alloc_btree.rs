//! The free-space B+tree (the XFS by-block-number allocation btree, `bnobt`): free extents keyed
//! by first physical block, in nodes that carry a CRC32C of their contents.
//!
//! Owns: the set of free physical blocks, and the root's on-"disk" CRC, which fault injection can
//! mark bad.
//! Invariants: records are ordered by start, never overlap and never touch (neighbours are merged
//! on free); an internal node's key is <= every key in its child and > every key in the previous
//! child; every node's stored CRC equals the CRC of its contents, except the root while
//! [`FreeSpaceTree::is_corrupt`]. Nodes are split when they overflow and removed when they empty;
//! they are not rebalanced (an underfull node is still a valid B+tree node for lookups).
//! Every allocation and free first verifies the root's CRC (the read-path check): a bad root
//! fails them with [`AllocError::Corrupt`] and leaves the tree untouched.
//! Locks: lives behind the allocator lock (`Fs::alloc`); takes none.

/// Most records (leaf) or children (internal) per node.
const FANOUT: usize = 16;

/// A free extent of physical blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FreeExtent {
    /// First physical block.
    pub start: u64,
    /// Length in blocks (> 0).
    pub len: u64,
}

impl FreeExtent {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Why an allocator operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The root failed its CRC check (EFSCORRUPTED).
    Corrupt,
    /// Not enough free blocks in the tree (ENOSPC).
    NoSpace,
    /// A free of blocks that are already free (a double free): the tree is left unchanged.
    DoubleFree,
}

#[derive(Debug)]
struct Child {
    key: u64,
    node: Box<Node>,
}

#[derive(Debug)]
enum Kind {
    Leaf(Vec<FreeExtent>),
    Internal(Vec<Child>),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    crc: u32,
}

impl Node {
    fn leaf(recs: Vec<FreeExtent>) -> Node {
        let mut n = Node {
            kind: Kind::Leaf(recs),
            crc: 0,
        };
        n.crc = n.compute_crc();
        n
    }

    fn internal(children: Vec<Child>) -> Node {
        let mut n = Node {
            kind: Kind::Internal(children),
            crc: 0,
        };
        n.crc = n.compute_crc();
        n
    }

    /// CRC32C over the node's contents (for internal nodes: keys and child CRCs).
    fn compute_crc(&self) -> u32 {
        let mut crc = vocab::Crc32c::new();
        match &self.kind {
            Kind::Leaf(recs) => {
                crc.update(b"leaf");
                for r in recs {
                    crc.update(&r.start.to_le_bytes());
                    crc.update(&r.len.to_le_bytes());
                }
            }
            Kind::Internal(ch) => {
                crc.update(b"node");
                for c in ch {
                    crc.update(&c.key.to_le_bytes());
                    crc.update(&c.node.crc.to_le_bytes());
                }
            }
        }
        crc.finish()
    }

    fn update_crc(&mut self) {
        self.crc = self.compute_crc();
    }

    fn is_empty(&self) -> bool {
        match &self.kind {
            Kind::Leaf(r) => r.is_empty(),
            Kind::Internal(c) => c.is_empty(),
        }
    }

    /// Index of the child whose key range holds `x`.
    fn child_index(ch: &[Child], x: u64) -> usize {
        ch.partition_point(|c| c.key <= x).saturating_sub(1)
    }

    fn first(&self) -> Option<FreeExtent> {
        match &self.kind {
            Kind::Leaf(r) => r.first().copied(),
            Kind::Internal(c) => c.iter().find_map(|c| c.node.first()),
        }
    }

    fn last(&self) -> Option<FreeExtent> {
        match &self.kind {
            Kind::Leaf(r) => r.last().copied(),
            Kind::Internal(c) => c.iter().rev().find_map(|c| c.node.last()),
        }
    }

    /// The last record with `start <= x`.
    fn pred(&self, x: u64) -> Option<FreeExtent> {
        match &self.kind {
            Kind::Leaf(r) => {
                let i = r.partition_point(|e| e.start <= x);
                if i == 0 {
                    None
                } else {
                    Some(r[i - 1])
                }
            }
            Kind::Internal(c) => {
                if c.is_empty() {
                    return None;
                }
                let i = Node::child_index(c, x);
                c[i].node
                    .pred(x)
                    .or_else(|| c[..i].iter().rev().find_map(|c| c.node.last()))
            }
        }
    }

    /// The first record with `start > x`.
    fn succ(&self, x: u64) -> Option<FreeExtent> {
        match &self.kind {
            Kind::Leaf(r) => r.get(r.partition_point(|e| e.start <= x)).copied(),
            Kind::Internal(c) => {
                if c.is_empty() {
                    return None;
                }
                let i = Node::child_index(c, x);
                c[i].node
                    .succ(x)
                    .or_else(|| c[i + 1..].iter().find_map(|c| c.node.first()))
            }
        }
    }

    /// Inserts a record; returns the split-off right sibling and its key on overflow.
    fn insert(&mut self, rec: FreeExtent) -> Option<Child> {
        let split = match &mut self.kind {
            Kind::Leaf(r) => {
                let i = r.partition_point(|e| e.start < rec.start);
                r.insert(i, rec);
                if r.len() > FANOUT {
                    let right = r.split_off(r.len() / 2);
                    Some(Child {
                        key: right[0].start,
                        node: Box::new(Node::leaf(right)),
                    })
                } else {
                    None
                }
            }
            Kind::Internal(c) => {
                let i = Node::child_index(c, rec.start);
                if rec.start < c[i].key {
                    c[i].key = rec.start;
                }
                if let Some(sib) = c[i].node.insert(rec) {
                    c.insert(i + 1, sib);
                }
                if c.len() > FANOUT {
                    let right = c.split_off(c.len() / 2);
                    Some(Child {
                        key: right[0].key,
                        node: Box::new(Node::internal(right)),
                    })
                } else {
                    None
                }
            }
        };
        self.update_crc();
        split
    }

    /// Removes the record starting exactly at `start`.
    fn remove(&mut self, start: u64) -> Option<FreeExtent> {
        let out = match &mut self.kind {
            Kind::Leaf(r) => {
                let i = r.binary_search_by_key(&start, |e| e.start).ok()?;
                Some(r.remove(i))
            }
            Kind::Internal(c) => {
                if c.is_empty() {
                    return None;
                }
                let i = Node::child_index(c, start);
                let out = c[i].node.remove(start)?;
                if c[i].node.is_empty() {
                    c.remove(i);
                }
                Some(out)
            }
        };
        self.update_crc();
        out
    }

    fn collect(&self, out: &mut Vec<FreeExtent>) {
        match &self.kind {
            Kind::Leaf(r) => out.extend_from_slice(r),
            Kind::Internal(c) => c.iter().for_each(|c| c.node.collect(out)),
        }
    }

    /// Checks key order and bounds below this node; returns problems as text.
    fn check(
        &self,
        lo: u64,
        hi: u64,
        is_root: bool,
        corrupt: bool,
        errs: &mut Vec<(&'static str, String)>,
    ) {
        if !(is_root && corrupt) && self.crc != self.compute_crc() {
            errs.push((
                "btree-crc",
                format!("node with {} entries has a bad CRC", self.len()),
            ));
        }
        match &self.kind {
            Kind::Leaf(r) => {
                for w in r.windows(2) {
                    if w[0].end() > w[1].start {
                        errs.push((
                            "btree-order",
                            format!(
                                "records {:?} and {:?} overlap or are out of order",
                                w[0], w[1]
                            ),
                        ));
                    }
                }
                for e in r {
                    if e.start < lo || e.start >= hi || e.len == 0 {
                        errs.push((
                            "btree-order",
                            format!("record {e:?} outside its node's key range [{lo}, {hi})"),
                        ));
                    }
                }
            }
            Kind::Internal(c) => {
                for (i, ch) in c.iter().enumerate() {
                    let next = c.get(i + 1).map(|n| n.key).unwrap_or(hi);
                    if ch.key >= next || (i > 0 && ch.key < lo) {
                        errs.push((
                            "btree-order",
                            format!("internal keys out of order at {}", ch.key),
                        ));
                    }
                    let child_lo = if i == 0 { lo } else { ch.key };
                    ch.node.check(child_lo, next, false, corrupt, errs);
                }
            }
        }
    }

    fn len(&self) -> usize {
        match &self.kind {
            Kind::Leaf(r) => r.len(),
            Kind::Internal(c) => c.len(),
        }
    }
}

/// The free-space B+tree.
#[derive(Debug)]
pub struct FreeSpaceTree {
    root: Box<Node>,
    corrupt: bool,
}

impl FreeSpaceTree {
    /// A tree whose only record is `[0, capacity)`.
    pub fn new(capacity: u64) -> Self {
        let recs = if capacity > 0 {
            vec![FreeExtent {
                start: 0,
                len: capacity,
            }]
        } else {
            vec![]
        };
        FreeSpaceTree {
            root: Box::new(Node::leaf(recs)),
            corrupt: false,
        }
    }

    /// Builds a tree from ordered, disjoint free extents.
    pub fn from_extents(exts: &[FreeExtent]) -> Self {
        let mut t = FreeSpaceTree {
            root: Box::new(Node::leaf(Vec::new())),
            corrupt: false,
        };
        for &e in exts {
            t.insert_raw(e);
        }
        t
    }

    /// Whether the root's CRC has been marked bad.
    pub fn is_corrupt(&self) -> bool {
        self.corrupt
    }

    /// Fault injection: writes a wrong CRC into the root.
    pub fn corrupt_root(&mut self) {
        if !self.corrupt {
            self.root.crc ^= 0xDEAD_BEEF;
            self.corrupt = true;
        }
    }

    /// The read-path check: recomputes the root's CRC and compares it with the stored one.
    fn verify_root(&self) -> Result<(), AllocError> {
        if self.root.crc == self.root.compute_crc() {
            Ok(())
        } else {
            Err(AllocError::Corrupt)
        }
    }

    /// Whether an allocation or free would pass the root check now (for all-or-nothing ops).
    pub fn check_readable(&self) -> Result<(), AllocError> {
        self.verify_root()
    }

    fn insert_raw(&mut self, rec: FreeExtent) {
        if let Some(sib) = self.root.insert(rec) {
            let old = std::mem::replace(&mut self.root, Box::new(Node::leaf(Vec::new())));
            let left_key = old.first().map(|e| e.start).unwrap_or(0).min(sib.key);
            *self.root = Node::internal(vec![
                Child {
                    key: left_key,
                    node: old,
                },
                sib,
            ]);
        }
    }

    fn remove_raw(&mut self, start: u64) -> Option<FreeExtent> {
        let out = self.root.remove(start);
        // Collapse a root with a single child.
        loop {
            let only = match &mut self.root.kind {
                Kind::Internal(c) if c.len() == 1 => c.pop(),
                Kind::Internal(c) if c.is_empty() => {
                    *self.root = Node::leaf(Vec::new());
                    None
                }
                _ => None,
            };
            match only {
                Some(ch) => self.root = ch.node,
                None => break,
            }
        }
        out
    }

    /// Allocates `n` blocks, lowest block numbers first; returns the physical extents in order.
    /// All or nothing.
    pub fn alloc(&mut self, n: u64) -> Result<Vec<FreeExtent>, AllocError> {
        self.verify_root()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        // Check availability first so that a failure leaves the tree untouched.
        let mut avail = 0u64;
        let mut probe = self.root.first();
        while let Some(e) = probe {
            avail += e.len;
            if avail >= n {
                break;
            }
            probe = self.root.succ(e.start);
        }
        if avail < n {
            return Err(AllocError::NoSpace);
        }
        let mut out = Vec::new();
        let mut need = n;
        while need > 0 {
            let Some(e) = self.root.first() else {
                return Err(AllocError::NoSpace);
            };
            self.remove_raw(e.start);
            let take = e.len.min(need);
            if e.len > take {
                self.insert_raw(FreeExtent {
                    start: e.start + take,
                    len: e.len - take,
                });
            }
            match out.last_mut() {
                Some(FreeExtent { start, len }) if *start + *len == e.start => *len += take,
                _ => out.push(FreeExtent {
                    start: e.start,
                    len: take,
                }),
            }
            need -= take;
        }
        Ok(out)
    }

    /// Returns `[start, start+len)` to the free space, merging with free neighbours.
    pub fn free(&mut self, start: u64, len: u64) -> Result<(), AllocError> {
        self.verify_root()?;
        if len == 0 {
            return Ok(());
        }
        let end = start.saturating_add(len);
        let pred = self.root.pred(start);
        let succ = self.root.succ(start);
        if pred.is_some_and(|p| p.end() > start) || succ.is_some_and(|s| s.start < end) {
            return Err(AllocError::DoubleFree);
        }
        let mut rec = FreeExtent {
            start,
            len: end - start,
        };
        if let Some(p) = pred.filter(|p| p.end() == start) {
            self.remove_raw(p.start);
            rec = FreeExtent {
                start: p.start,
                len: p.len + rec.len,
            };
        }
        if let Some(s) = succ.filter(|s| s.start == end) {
            self.remove_raw(s.start);
            rec.len += s.len;
        }
        self.insert_raw(rec);
        Ok(())
    }

    /// Every record, in order.
    pub fn records(&self) -> Vec<FreeExtent> {
        let mut v = Vec::new();
        self.root.collect(&mut v);
        v
    }

    /// Total free blocks in the tree.
    #[cfg(test)]
    pub fn free_blocks(&self) -> u64 {
        self.records().iter().map(|e| e.len).sum()
    }

    /// Structural checks: key order (`btree-order`) and node CRCs (`btree-crc`, the root's
    /// skipped while corruption is injected).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        self.root.check(0, u64::MAX, true, self.corrupt, &mut errs);
        errs
    }
}
