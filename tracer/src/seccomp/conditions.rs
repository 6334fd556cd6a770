//! The argument algebra: which argument values a rule's conditions let through, as exact sets,
//! so that "does this rule allow anything that one doesn't" is a computation, not a guess.
//!
//! A set of 64-bit values is a union of cubes (`x & mask == value`): EQ is one cube, a range
//! is at most 128, NE at most 64, MASKED_EQ one; intersection and difference of cubes are
//! cubes again. A rule's conditions over the six arguments form a box (a product of value
//! sets), and what a syscall allows is a union of boxes: a [`Region`].
use std::fmt;

use super::model::{ARGS, Arg, Op};

/// Work budget for one subset test: pathological inputs answer "not within" instead of
/// running for long (every caller treats that answer as the safe one).
const BUDGET: usize = 200_000;

/// `{x : x & mask == value}`; `value` has no bits outside `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cube {
    pub mask: u64,
    pub value: u64,
}

impl Cube {
    pub const ALL: Cube = Cube { mask: 0, value: 0 };

    pub fn eq(v: u64) -> Cube {
        Cube {
            mask: u64::MAX,
            value: v,
        }
    }

    pub fn masked(mask: u64, value: u64) -> Option<Cube> {
        // A datum with bits outside the mask can never match.
        (value & !mask == 0).then_some(Cube { mask, value })
    }

    fn intersect(self, other: Cube) -> Option<Cube> {
        let common = self.mask & other.mask;
        (self.value & common == other.value & common).then_some(Cube {
            mask: self.mask | other.mask,
            value: self.value | other.value,
        })
    }

    fn contains(self, other: Cube) -> bool {
        self.mask & !other.mask == 0 && other.value & self.mask == self.value
    }

    /// `self \ other` as disjoint cubes.
    fn minus(self, other: Cube, out: &mut Vec<Cube>) {
        if self.intersect(other).is_none() {
            out.push(self);
            return;
        }
        let mut fixed = self;
        let mut free = other.mask & !self.mask;
        // Highest bits first: the pieces are then prefix cubes (ranges) wherever `self` is.
        while free != 0 {
            let bit = 1u64 << (63 - free.leading_zeros());
            free &= !bit;
            // Agree with `other` on the bits fixed so far, differ on this one.
            out.push(Cube {
                mask: fixed.mask | bit,
                value: fixed.value | (!other.value & bit),
            });
            fixed.mask |= bit;
            fixed.value |= other.value & bit;
        }
    }

    /// The single value this cube holds, if it holds one.
    pub fn single(self) -> Option<u64> {
        (self.mask == u64::MAX).then_some(self.value)
    }

    /// The condition on argument `index` that holds for exactly this cube: EQ for a single
    /// value, MASKED_EQ otherwise.
    pub fn arg(self, index: u32) -> Arg {
        match self.single() {
            Some(v) => Arg::eq(index, v),
            None => Arg {
                index,
                value: self.mask,
                value_two: self.value,
                op: Op::MaskedEq,
            },
        }
    }
}

/// A set of argument values: a union of cubes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueSet(Vec<Cube>);

impl ValueSet {
    pub fn all() -> Self {
        ValueSet(vec![Cube::ALL])
    }

    pub fn empty() -> Self {
        ValueSet(Vec::new())
    }

    pub fn of(cubes: impl IntoIterator<Item = Cube>) -> Self {
        let mut s = ValueSet(cubes.into_iter().collect());
        s.normalize();
        s
    }

    pub fn cubes(&self) -> &[Cube] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_all(&self) -> bool {
        self.0.contains(&Cube::ALL)
    }

    /// The values a condition lets through.
    pub fn of_arg(arg: &Arg) -> Self {
        let v = arg.value;
        match arg.op {
            Op::Eq => ValueSet(vec![Cube::eq(v)]),
            Op::Ne => ValueSet::all().minus(&ValueSet(vec![Cube::eq(v)])),
            Op::Lt => match v.checked_sub(1) {
                Some(hi) => range(0, hi),
                None => ValueSet::empty(),
            },
            Op::Le => range(0, v),
            Op::Gt => match v.checked_add(1) {
                Some(lo) => range(lo, u64::MAX),
                None => ValueSet::empty(),
            },
            Op::Ge => range(v, u64::MAX),
            // Docker's format: `value` is the mask, `valueTwo` the datum.
            Op::MaskedEq => ValueSet(Cube::masked(v, arg.value_two).into_iter().collect()),
        }
    }

    pub fn intersect(&self, other: &ValueSet) -> ValueSet {
        let mut out = Vec::new();
        for a in &self.0 {
            for b in &other.0 {
                out.extend(a.intersect(*b));
            }
        }
        ValueSet::of(out)
    }

    pub fn minus(&self, other: &ValueSet) -> ValueSet {
        let mut cur = self.0.clone();
        for b in &other.0 {
            let mut next = Vec::new();
            for a in cur {
                a.minus(*b, &mut next);
            }
            cur = next;
            if cur.is_empty() {
                break;
            }
        }
        ValueSet::of(cur)
    }

    pub fn union(&self, other: &ValueSet) -> ValueSet {
        ValueSet::of(self.0.iter().chain(other.0.iter()).copied())
    }

    pub fn is_subset(&self, other: &ValueSet) -> bool {
        self.minus(other).is_empty()
    }

    /// The values, when the set is a few single values.
    pub fn values(&self) -> Option<Vec<u64>> {
        self.0.iter().map(|c| c.single()).collect()
    }

    /// Conditions on argument `index` whose union is this set (each alone in a rule).
    pub fn conditions(&self, index: u32) -> Vec<Arg> {
        let prefix = |c: &Cube| (!c.mask).wrapping_add(1) & !c.mask == 0 || c.mask == 0;
        if !self.0.iter().all(prefix) {
            return self.0.iter().map(|c| c.arg(index)).collect();
        }
        // Prefix cubes are ranges: merge the adjacent ones.
        let mut ranges: Vec<(u64, u64)> = self
            .0
            .iter()
            .map(|c| (c.value, c.value | !c.mask))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some((_, end)) if end.checked_add(1).is_none_or(|n| n >= lo) => {
                    *end = (*end).max(hi)
                }
                _ => merged.push((lo, hi)),
            }
        }
        let mut out = Vec::new();
        for (lo, hi) in merged {
            let op = |op, value| Arg {
                index,
                value,
                value_two: 0,
                op,
            };
            if lo == hi {
                out.push(Arg::eq(index, lo));
            } else if lo == 0 {
                out.push(op(Op::Le, hi));
            } else if hi == u64::MAX {
                out.push(op(Op::Ge, lo));
            } else {
                out.extend(range(lo, hi).0.iter().map(|c| c.arg(index)));
            }
        }
        out
    }

    /// Drops cubes another cube contains, and sorts: equal sets compare equal more often.
    fn normalize(&mut self) {
        self.0.sort_unstable();
        self.0.dedup();
        if self.0.len() > 1 {
            let cubes = std::mem::take(&mut self.0);
            for (i, c) in cubes.iter().enumerate() {
                let covered = cubes
                    .iter()
                    .enumerate()
                    .any(|(j, d)| j != i && d.contains(*c) && (d != c || j < i));
                if !covered {
                    self.0.push(*c);
                }
            }
        }
    }
}

/// `[lo, hi]` as prefix cubes.
fn range(mut lo: u64, hi: u64) -> ValueSet {
    let mut out = Vec::new();
    loop {
        // The largest aligned block starting at lo that stays within hi.
        let mut size_bits = if lo == 0 { 64 } else { lo.trailing_zeros() };
        while size_bits > 0 {
            let last = if size_bits == 64 {
                u64::MAX
            } else {
                lo | ((1u64 << size_bits) - 1)
            };
            if last <= hi {
                break;
            }
            size_bits -= 1;
        }
        let mask = if size_bits == 64 {
            0
        } else {
            !((1u64 << size_bits) - 1)
        };
        out.push(Cube { mask, value: lo });
        let last = lo | !mask;
        if last >= hi {
            break;
        }
        lo = last + 1;
    }
    ValueSet::of(out)
}

/// One rule's conditions: the values each argument may take (ANDed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgBox(pub [ValueSet; ARGS]);

impl ArgBox {
    pub fn all() -> Self {
        ArgBox(std::array::from_fn(|_| ValueSet::all()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().any(ValueSet::is_empty)
    }

    pub fn is_all(&self) -> bool {
        self.0.iter().all(ValueSet::is_all)
    }

    pub fn intersect(&self, other: &ArgBox) -> ArgBox {
        ArgBox(std::array::from_fn(|i| self.0[i].intersect(&other.0[i])))
    }

    fn contains(&self, other: &ArgBox) -> bool {
        other.is_empty() || (0..ARGS).all(|i| other.0[i].is_subset(&self.0[i]))
    }

    /// `self \ other` as a union of boxes.
    fn minus(&self, other: &ArgBox, out: &mut Vec<ArgBox>) {
        if self.intersect(other).is_empty() {
            out.push(self.clone());
            return;
        }
        let mut prefix = self.clone();
        for i in 0..ARGS {
            if other.0[i].is_all() {
                continue;
            }
            let rest = self.0[i].minus(&other.0[i]);
            if !rest.is_empty() {
                let mut piece = prefix.clone();
                piece.0[i] = rest;
                out.push(piece);
            }
            prefix.0[i] = prefix.0[i].intersect(&other.0[i]);
        }
    }

    /// The conditions that describe this box, one per constrained argument and cube; `None`
    /// when an argument needs more than one cube (one rule can't say that under runc).
    pub fn to_args(&self) -> Option<Vec<Arg>> {
        let mut args = Vec::new();
        for (i, set) in self.0.iter().enumerate() {
            if set.is_all() {
                continue;
            }
            let [cube] = set.cubes() else {
                return None;
            };
            args.push(cube.arg(i as u32));
        }
        Some(args)
    }

    /// The box as rules (each a list of ANDed conditions on distinct arguments): ranges that
    /// start at 0 or end at the top become one LE/GE, single values EQ, the rest MASKED_EQ.
    pub fn to_rules(&self) -> Vec<Vec<Arg>> {
        let mut out: Vec<Vec<Arg>> = vec![Vec::new()];
        for (i, set) in self.0.iter().enumerate() {
            if set.is_all() {
                continue;
            }
            let conds = set.conditions(i as u32);
            let mut next = Vec::with_capacity(out.len() * conds.len());
            for prefix in &out {
                for c in &conds {
                    let mut r = prefix.clone();
                    r.push(c.clone());
                    next.push(r);
                }
            }
            out = next;
        }
        out
    }

    /// Splits into boxes whose every argument is one cube (each expressible as one rule).
    pub fn split_cubes(&self) -> Vec<ArgBox> {
        let mut out = vec![ArgBox::all()];
        for i in 0..ARGS {
            if self.0[i].is_all() {
                continue;
            }
            let mut next = Vec::new();
            for b in &out {
                for c in self.0[i].cubes() {
                    let mut piece = b.clone();
                    piece.0[i] = ValueSet(vec![*c]);
                    next.push(piece);
                }
            }
            out = next;
        }
        out
    }
}

/// The conditions of one rule, as runc hands them to libseccomp: conditions on different
/// arguments are ANDed; if one argument is named twice, runc adds one rule per condition,
/// so they are ORed (a Docker-format rule `NE 38, NE 40` on one argument allows everything).
pub fn rule_region(args: &[Arg]) -> Region {
    let mut seen = [0u8; ARGS];
    for a in args {
        if let Some(n) = seen.get_mut(a.index as usize) {
            *n += 1;
        }
    }
    let single = |a: &Arg| {
        let mut b = ArgBox::all();
        if let Some(set) = b.0.get_mut(a.index as usize) {
            *set = ValueSet::of_arg(a);
        }
        b
    };
    if seen.iter().any(|&n| n > 1) {
        return Region::of(args.iter().map(single));
    }
    let mut b = ArgBox::all();
    for a in args {
        if let Some(set) = b.0.get_mut(a.index as usize) {
            *set = set.intersect(&ValueSet::of_arg(a));
        }
    }
    Region::of([b])
}

/// A union of boxes: the argument values for which a syscall is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region(Vec<ArgBox>);

impl Region {
    pub fn empty() -> Self {
        Region(Vec::new())
    }

    pub fn all() -> Self {
        Region(vec![ArgBox::all()])
    }

    pub fn of(boxes: impl IntoIterator<Item = ArgBox>) -> Self {
        let mut r = Region(boxes.into_iter().filter(|b| !b.is_empty()).collect());
        r.normalize();
        r
    }

    pub fn boxes(&self) -> &[ArgBox] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_all(&self) -> bool {
        self.0.iter().any(ArgBox::is_all)
    }

    pub fn union(&self, other: &Region) -> Region {
        Region::of(self.0.iter().chain(other.0.iter()).cloned())
    }

    pub fn intersect(&self, other: &Region) -> Region {
        let mut out = Vec::new();
        for a in &self.0 {
            for b in &other.0 {
                out.push(a.intersect(b));
            }
        }
        Region::of(out)
    }

    /// `self \ other`, or `None` when the work exceeds the budget.
    pub fn minus(&self, other: &Region) -> Option<Region> {
        let mut cur = self.0.clone();
        let mut work = 0usize;
        for b in &other.0 {
            let mut next = Vec::new();
            for a in cur {
                a.minus(b, &mut next);
            }
            work += next.len();
            if work > BUDGET {
                return None;
            }
            cur = next;
            if cur.is_empty() {
                break;
            }
        }
        Some(Region::of(cur))
    }

    /// Whether every value this region allows, `other` allows too (false when undecidable
    /// within the budget: the safe answer for every caller).
    pub fn within(&self, other: &Region) -> bool {
        if self.is_empty() || other.is_all() {
            return true;
        }
        if self.0.iter().all(|a| other.0.iter().any(|b| b.contains(a))) {
            return true;
        }
        self.minus(other).is_some_and(|r| r.is_empty())
    }

    fn normalize(&mut self) {
        if self.0.iter().any(ArgBox::is_all) {
            self.0 = vec![ArgBox::all()];
            return;
        }
        let boxes = std::mem::take(&mut self.0);
        for (i, b) in boxes.iter().enumerate() {
            let covered = boxes
                .iter()
                .enumerate()
                .any(|(j, d)| j != i && d.contains(b) && (d != b || j < i));
            if !covered {
                self.0.push(b.clone());
            }
        }
    }
}

impl fmt::Display for Cube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single() {
            Some(v) => write!(f, "{v:#x}"),
            None if self.mask == 0 => f.write_str("any"),
            None => write!(f, "&{:#x}=={:#x}", self.mask, self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(index: u32, op: Op, value: u64) -> Arg {
        Arg {
            index,
            value,
            value_two: 0,
            op,
        }
    }

    fn masked(index: u32, mask: u64, datum: u64) -> Arg {
        Arg {
            index,
            value: mask,
            value_two: datum,
            op: Op::MaskedEq,
        }
    }

    fn set(a: &Arg) -> ValueSet {
        ValueSet::of_arg(a)
    }

    fn has(s: &ValueSet, v: u64) -> bool {
        s.cubes().iter().any(|c| v & c.mask == c.value)
    }

    #[test]
    fn single_conditions_hold_exactly_their_values() {
        let probes = [0, 1, 37, 38, 39, 40, 41, 1 << 40, u64::MAX - 1, u64::MAX];
        for op in [Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge] {
            for v in [0, 38, 40, u64::MAX] {
                let s = set(&arg(0, op, v));
                for x in probes {
                    let want = match op {
                        Op::Eq => x == v,
                        Op::Ne => x != v,
                        Op::Lt => x < v,
                        Op::Le => x <= v,
                        Op::Gt => x > v,
                        Op::Ge => x >= v,
                        Op::MaskedEq => unreachable!(),
                    };
                    assert_eq!(has(&s, x), want, "{op:?} {v} on {x}");
                }
            }
        }
        // Complements come out as few conditions.
        let not2 = ValueSet::all().minus(&set(&arg(0, Op::Eq, 2)));
        assert_eq!(not2.conditions(0), [arg(0, Op::Le, 1), arg(0, Op::Ge, 3)]);
        let clone = set(&masked(0, 0x7E02_0000, 0));
        assert!(has(&clone, 0x11)); // SIGCHLD
        assert!(!has(&clone, 0x1000_0000)); // CLONE_NEWUSER
        assert!(!has(&clone, 0x0200_0000)); // CLONE_NEWCGROUP is inside this mask
        assert!(
            set(&masked(0, 0xf, 0x10)).is_empty(),
            "datum outside the mask"
        );
    }

    #[test]
    fn ranges_are_few_cubes() {
        assert_eq!(set(&arg(0, Op::Lt, 38)).cubes().len(), 3); // 0-31, 32-35, 36-37
        assert!(set(&arg(0, Op::Ge, 0)).is_all());
        assert!(set(&arg(0, Op::Lt, 0)).is_empty());
        assert!(set(&arg(0, Op::Gt, u64::MAX)).is_empty());
        assert_eq!(set(&arg(0, Op::Ne, 5)).cubes().len(), 64);
    }

    #[test]
    fn subsets() {
        let lt38 = set(&arg(0, Op::Lt, 38));
        let eq2 = set(&arg(0, Op::Eq, 2));
        assert!(eq2.is_subset(&lt38));
        assert!(!lt38.is_subset(&eq2));
        let ne40 = set(&arg(0, Op::Ne, 40));
        assert!(lt38.is_subset(&ne40));
        assert!(!ne40.is_subset(&lt38));
        // Docker's socket rules: < 38, == 39, > 40 is "everything but 38 and 40".
        let docker = lt38
            .union(&set(&arg(0, Op::Eq, 39)))
            .union(&set(&arg(0, Op::Gt, 40)));
        let but = ValueSet::all()
            .minus(&set(&arg(0, Op::Eq, 38)))
            .minus(&set(&arg(0, Op::Eq, 40)));
        assert!(docker.is_subset(&but) && but.is_subset(&docker));
        assert!(!ne40.is_subset(&docker), "38 (AF_ALG) is missing");
        // The old clone mask (0x7C020000) allows CLONE_NEWCGROUP; the new one doesn't.
        let old = set(&masked(0, 0x7C02_0000, 0));
        let new = set(&masked(0, 0x7E02_0000, 0));
        assert!(new.is_subset(&old));
        assert!(!old.is_subset(&new));
    }

    #[test]
    fn boxes_and_regions() {
        // socket(AF_INET, SOCK_STREAM | flags): family 2, type & 0xf == 1.
        let inet = rule_region(&[arg(0, Op::Eq, 2), masked(1, 0xf, 1)]);
        let docker = Region::of(
            [
                rule_region(&[arg(0, Op::Lt, 38)]),
                rule_region(&[arg(0, Op::Eq, 39)]),
                rule_region(&[arg(0, Op::Gt, 40)]),
            ]
            .into_iter()
            .flat_map(|r| r.0),
        );
        assert!(inet.within(&docker));
        assert!(!docker.within(&inet));
        assert!(!Region::all().within(&docker));
        assert!(Region::empty().within(&Region::empty()));
        // Conditions on two arguments are ANDed ...
        let both = rule_region(&[arg(0, Op::Eq, 1), arg(1, Op::Eq, 2)]);
        assert!(both.within(&rule_region(&[arg(0, Op::Eq, 1)])));
        assert!(both.within(&rule_region(&[arg(1, Op::Eq, 2)])));
        assert!(!rule_region(&[arg(0, Op::Eq, 1)]).within(&both));
        // ... two on one argument are ORed, as runc adds them as separate rules.
        let twice = rule_region(&[arg(0, Op::Ne, 38), arg(0, Op::Ne, 40)]);
        assert!(Region::all().within(&twice));
        // A union covers a box that no single member covers.
        let halves = Region::of(
            rule_region(&[arg(0, Op::Lt, 10)])
                .0
                .into_iter()
                .chain(rule_region(&[arg(0, Op::Ge, 10)]).0),
        );
        assert!(rule_region(&[arg(0, Op::Ne, 3), arg(2, Op::Eq, 7)]).within(&halves));
        assert!(Region::all().within(&halves));
    }

    #[test]
    fn boxes_round_trip_to_conditions() {
        let r = rule_region(&[arg(0, Op::Eq, 2), masked(1, 0xf, 1)]);
        let args = r.boxes()[0].to_args().unwrap();
        assert_eq!(rule_region(&args), r);
        let lt = rule_region(&[arg(0, Op::Lt, 38)]);
        assert!(lt.boxes()[0].to_args().is_none());
        let pieces: Vec<ArgBox> = lt.boxes()[0].split_cubes();
        assert_eq!(pieces.len(), 3);
        let back = Region::of(
            pieces
                .iter()
                .flat_map(|b| rule_region(&b.to_args().unwrap()).0),
        );
        assert!(back.within(&lt) && lt.within(&back));
    }
}
