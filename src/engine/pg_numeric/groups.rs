//! `avg` of NUMERIC and integers over many groups at once (`GROUP BY l_partkey`), as
//! DataFusion's own `avg` does: one vector of sums and counts for all groups instead of an
//! accumulator object per group. Sums stay in `i128`; a group whose sum would overflow it moves
//! to a big integer. The state and results are [`super::aggregate`]'s.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, Int32Array, Int64Array};
use datafusion::arrow::datatypes::{Decimal128Type, Int32Type, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use num_bigint::BigInt;
use num_traits::ToPrimitive;

use super::arith::{self, Stat, Sums};
use super::scalar::{arith_err, stored};

/// Per-group sums of an `avg` whose input rows all show their type's scale.
#[derive(Debug)]
pub struct AvgGroups {
    scale_only: bool,
    /// Scale of the input values (and their display scale).
    scale: i8,
    /// Scale the result is stored at.
    out: i8,
    sums: Vec<i128>,
    counts: Vec<i64>,
    /// Groups whose sum left `i128`.
    big: HashMap<usize, BigInt>,
    /// Largest display scale merged in per group (partial states may carry one).
    dscales: Vec<u32>,
    /// A bound on every group's |sum|: the sum, over the batches added so far, of each one's
    /// largest |value| times its rows. While a batch keeps it within `i128` its rows are added
    /// without a test per row (the loop then runs about twice as fast).
    bound: u128,
}

impl AvgGroups {
    pub fn new(scale_only: bool, scale: i8, out: i8) -> Self {
        AvgGroups { scale_only, scale, out, sums: vec![], counts: vec![], big: HashMap::new(), dscales: vec![], bound: 0 }
    }

    fn resize(&mut self, n: usize) {
        if self.sums.len() < n {
            self.sums.resize(n, 0);
            self.counts.resize(n, 0);
            self.dscales.resize(n, self.scale.max(0) as u32);
        }
    }

    fn add(&mut self, g: usize, v: &BigInt, small: Option<i128>, n: i64) {
        self.counts[g] += n;
        if let Some(b) = self.big.get_mut(&g) {
            *b += v;
            return;
        }
        match small.and_then(|x| self.sums[g].checked_add(x)) {
            Some(s) => self.sums[g] = s,
            None => {
                self.big.insert(g, BigInt::from(self.sums[g]) + v);
            }
        }
    }

    fn sum_of(&self, g: usize) -> BigInt {
        self.big.get(&g).cloned().unwrap_or_else(|| BigInt::from(self.sums[g]))
    }

    /// Take the groups `emit_to` names, renumbering the rest from 0.
    fn take(&mut self, emit_to: EmitTo) -> Vec<(BigInt, i64, u32)> {
        let n = match emit_to {
            EmitTo::All => self.sums.len(),
            EmitTo::First(n) => n,
        };
        let out = (0..n).map(|g| (self.sum_of(g), self.counts[g], self.dscales[g])).collect();
        emit_to.take_needed(&mut self.sums);
        emit_to.take_needed(&mut self.counts);
        emit_to.take_needed(&mut self.dscales);
        let big = std::mem::take(&mut self.big);
        self.big = big.into_iter().filter(|(g, _)| *g >= n).map(|(g, b)| (g - n, b)).collect();
        out
    }
}

/// Up to this many groups, a batch is summed in [`LANES`] independent sets of sums.
const LANED_GROUPS: usize = 512;
const LANES: usize = 4;

/// Adds `xs` to the sums of `groups` (of `total`) through [`LANES`] independent sets of sums,
/// row `i` going to set `i % LANES`, then folds the sets in. With few groups consecutive rows
/// mostly hit the same sum, and each addition waited for the previous one's store (TPC-H Q01:
/// four groups, six million rows); separate sets let the additions overlap. No value can
/// overflow: the caller checked the batch's bound.
fn laned(sums: &mut [i128], counts: &mut [i64], total: usize, groups: &[usize], xs: &[i128]) {
    // (An empty batch may come with no groups at all; chunks of zero would not do.)
    if total == 0 || groups.is_empty() {
        return;
    }
    let mut lane_sums = vec![0i128; LANES * total];
    let mut lane_counts = vec![0i64; LANES * total];
    {
        let (mut s, mut c) = (lane_sums.chunks_exact_mut(total), lane_counts.chunks_exact_mut(total));
        let (Some(s0), Some(s1), Some(s2), Some(s3)) = (s.next(), s.next(), s.next(), s.next()) else { return };
        let (Some(c0), Some(c1), Some(c2), Some(c3)) = (c.next(), c.next(), c.next(), c.next()) else { return };
        let (gs, vs) = (groups.chunks_exact(LANES), xs.chunks_exact(LANES));
        let (g_rest, v_rest) = (gs.remainder(), vs.remainder());
        for (g, v) in gs.zip(vs) {
            s0[g[0]] = s0[g[0]].wrapping_add(v[0]);
            c0[g[0]] += 1;
            s1[g[1]] = s1[g[1]].wrapping_add(v[1]);
            c1[g[1]] += 1;
            s2[g[2]] = s2[g[2]].wrapping_add(v[2]);
            c2[g[2]] += 1;
            s3[g[3]] = s3[g[3]].wrapping_add(v[3]);
            c3[g[3]] += 1;
        }
        for (&g, &v) in g_rest.iter().zip(v_rest) {
            s0[g] = s0[g].wrapping_add(v);
            c0[g] += 1;
        }
    }
    for (lane_s, lane_c) in lane_sums.chunks_exact(total).zip(lane_counts.chunks_exact(total)) {
        for g in 0..total {
            sums[g] = sums[g].wrapping_add(lane_s[g]);
            counts[g] += lane_c[g];
        }
    }
}

fn skip(filter: Option<&BooleanArray>, r: usize) -> bool {
    filter.is_some_and(|f| !f.is_valid(r) || !f.value(r))
}

impl GroupsAccumulator for AvgGroups {
    fn update_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        self.resize(total);
        let v = values[0].as_primitive::<Decimal128Type>();
        let xs = v.values();
        // Every row counts: no per-row null or filter test (the common case, a column declared
        // NOT NULL and no FILTER clause).
        let every = v.null_count() == 0 && filter.is_none();
        if every && self.big.is_empty() {
            let most = crate::engine::decimal_arith::magnitude_bound(xs);
            let bound = most.and_then(|m| m.checked_mul(groups.len() as u128)).and_then(|b| b.checked_add(self.bound));
            if let Some(bound) = bound.filter(|b| *b <= i128::MAX as u128) {
                self.bound = bound;
                if total <= LANED_GROUPS {
                    laned(&mut self.sums, &mut self.counts, total, groups, xs);
                    return Ok(());
                }
                // Slices, so the loop does not reload each vector's address after every store.
                let (sums, counts) = (&mut self.sums[..], &mut self.counts[..]);
                for (&g, &x) in groups.iter().zip(xs.iter()) {
                    counts[g] += 1;
                    sums[g] = sums[g].wrapping_add(x);
                }
                return Ok(());
            }
        }
        // The bound must cover what this batch adds too (at most every value of it, NULL slots
        // included), or a later batch would take the untested loop past i128.
        let most = crate::engine::decimal_arith::magnitude_bound(xs);
        self.bound = most.and_then(|m| m.checked_mul(groups.len() as u128)).and_then(|b| b.checked_add(self.bound)).unwrap_or(u128::MAX);
        for (r, &g) in groups.iter().enumerate() {
            if !every && (v.is_null(r) || skip(filter, r)) {
                continue;
            }
            let x = xs[r];
            self.counts[g] += 1;
            // Sums that left i128 are rare: look them up only when there are any.
            if !self.big.is_empty() {
                if let Some(b) = self.big.get_mut(&g) {
                    *b += x;
                    continue;
                }
            }
            match self.sums[g].checked_add(x) {
                Some(s) => self.sums[g] = s,
                None => {
                    self.big.insert(g, BigInt::from(self.sums[g]) + x);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let scale = self.scale.max(0) as u32;
        let groups = self.take(emit_to);
        let mut values = Vec::with_capacity(groups.len());
        let mut scales = Vec::with_capacity(groups.len());
        for (sum, n, dscale) in groups {
            let sums = Sums { sum, sum2: BigInt::from(0), n, dscale };
            match arith::finish(Stat::Avg, &sums, scale).map_err(arith_err)? {
                None => {
                    values.push(None);
                    scales.push(None);
                }
                Some(v) => {
                    scales.push(Some(v.dscale as i32));
                    values.push(if self.scale_only { None } else { Some(stored(&v, self.out)?) });
                }
            }
        }
        Ok(if self.scale_only {
            Arc::new(Int32Array::from(scales))
        } else {
            Arc::new(Decimal128Array::from(values).with_precision_and_scale(38, self.out)?)
        })
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to);
        let sums: Vec<Vec<u8>> = groups.iter().map(|(s, _, _)| s.to_signed_bytes_le()).collect();
        let zero = BigInt::from(0).to_signed_bytes_le();
        Ok(vec![
            Arc::new(BinaryArray::from_iter_values(sums.iter())),
            Arc::new(BinaryArray::from_iter_values(groups.iter().map(|_| zero.as_slice()))),
            Arc::new(Int64Array::from_iter_values(groups.iter().map(|(_, n, _)| *n))),
            Arc::new(Int32Array::from_iter_values(groups.iter().map(|(_, _, d)| *d as i32))),
        ])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        self.resize(total);
        // Merged sums are not bounded by rows: later batches take the tested path.
        self.bound = u128::MAX;
        let [sum, _, n, d] = values else { return Ok(()) };
        let (sum, n, d) = (sum.as_binary::<i32>(), n.as_primitive::<Int64Type>(), d.as_primitive::<Int32Type>());
        for (r, g) in groups.iter().enumerate() {
            if n.is_null(r) || skip(filter, r) {
                continue;
            }
            let s = BigInt::from_signed_bytes_le(sum.value(r));
            let small = s.to_i128();
            self.add(*g, &s, small, n.value(r));
            self.dscales[*g] = self.dscales[*g].max(d.value(r).max(0) as u32);
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.counts.capacity() * 8 + self.dscales.capacity() * 4 + self.big.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Decimal128Array;

    /// Averages of two groups of numeric(38,2) values, stored at scale `out`.
    fn avg(out: i8, batches: &[(Vec<i128>, Vec<usize>)]) -> Vec<Option<i128>> {
        let mut a = AvgGroups::new(false, 2, out);
        for (values, groups) in batches {
            let v: ArrayRef = Arc::new(Decimal128Array::from(values.clone()).with_precision_and_scale(38, 2).unwrap());
            a.update_batch(&[v], groups, None, 2).unwrap();
        }
        let out = a.evaluate(EmitTo::All).unwrap();
        let out = out.as_primitive::<Decimal128Type>();
        (0..out.len()).map(|i| out.is_valid(i).then(|| out.value(i))).collect()
    }

    #[test]
    fn a_tested_batch_counts_toward_the_bound() {
        // A batch with a NULL takes the tested loop; the NULL-free batch after it must not be
        // added untested past i128 (9.99e37 + 8e37 > 1.7e38): the group moves to a big integer.
        let mut a = AvgGroups::new(false, 0, 0);
        let first: ArrayRef = Arc::new(Decimal128Array::from(vec![Some(999 * 10i128.pow(35)), None]).with_precision_and_scale(38, 0).unwrap());
        let second: ArrayRef = Arc::new(Decimal128Array::from(vec![8 * 10i128.pow(37)]).with_precision_and_scale(38, 0).unwrap());
        a.update_batch(&[first], &[0, 0], None, 1).unwrap();
        a.update_batch(&[second], &[0], None, 1).unwrap();
        assert_eq!(a.sum_of(0), BigInt::from(999 * 10i128.pow(35)) + BigInt::from(8 * 10i128.pow(37)));
        // and after a batch whose own bound failed (8e37 twice), a small one is still tested
        let mut a = AvgGroups::new(false, 0, 0);
        for x in [8 * 10i128.pow(37), 8 * 10i128.pow(37), 15 * 10i128.pow(36)] {
            let v: ArrayRef = Arc::new(Decimal128Array::from(vec![x]).with_precision_and_scale(38, 0).unwrap());
            a.update_batch(&[v], &[0], None, 1).unwrap();
        }
        assert_eq!(a.sum_of(0), BigInt::from(16 * 10i128.pow(37)) + BigInt::from(15 * 10i128.pow(36)));
    }

    #[test]
    fn sums_past_i128_still_average_exactly() {
        // rows dealt over the sets of sums, with a remainder: 1.00 .. 11.00 in two groups
        let values: Vec<i128> = (1..=11).map(|v| v * 100).collect();
        let groups: Vec<usize> = (1..=11).map(|v| v % 2).collect();
        // odd values 1..11 average 6, even 2..10 average 6
        assert_eq!(avg(16, &[(values, groups)]), vec![Some(6 * 10i128.pow(16)), Some(6 * 10i128.pow(16))]);
        // an empty first batch, before any group exists
        let mut a = AvgGroups::new(false, 2, 16);
        let empty: ArrayRef = Arc::new(Decimal128Array::from(Vec::<i128>::new()).with_precision_and_scale(38, 2).unwrap());
        a.update_batch(&[empty], &[], None, 0).unwrap();
        assert_eq!(a.evaluate(EmitTo::All).unwrap().len(), 0);
        // small values take the untested loop: avg(1.00, 2.00, 6.00) is 3 at 16 places
        assert_eq!(avg(16, &[(vec![100, 200, 600], vec![0, 0, 0])]), vec![Some(3 * 10i128.pow(16)), None]);
        // two values whose sum leaves i128: the bound sends the second batch to the tested
        // loop, which moves the group to a big integer
        let big = 10i128.pow(38) - 1;
        let e30 = 10i128.pow(30);
        let got = avg(2, &[(vec![big, e30], vec![0, 1]), (vec![big, 3 * e30], vec![0, 1])]);
        assert_eq!(got, vec![Some(big), Some(2 * e30)]);
    }
}
