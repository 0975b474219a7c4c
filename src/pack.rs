//! Compact state identities for the explorers and the checker.
//!
//! A model state of a device with `G` GPUs and `V` slots packs into
//! `3G + 2 + V(4 + G)` bits, laid out exactly as [`State::key`] does
//! (`free`, `held[kube]`, the allocator's memo, Kubernetes' state, then
//! each VM's state and `held`), so two states of the same device are the
//! same (MODEL.md "States and actions") exactly when their packed keys are
//! equal. The memo takes the bits the allocator declares
//! ([`Allocator::memo_bits`](crate::Allocator::memo_bits)): `G` for
//! `snapshot`, none for `fixed` and `legacy`; [`Packer::new`] gives it `G`,
//! the layout of version 1.
//! When that fits in 64 bits (G=2 up to V=9; G=1 up to V=11) a key is a
//! `u64`, which is what keeps the checker's visited set at 8 bytes a slot.
//! The VM's `size` is not packed: exploration never uses the `gpus=N`
//! option, so a slot's size is always the device's.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::model::{Device, KubeState, MAX_VMS, State, VmState};

/// Packs and unpacks the states of one device.
#[derive(Clone, Copy, Debug)]
pub struct Packer {
    device: Device,
    /// The device's initial state, the template [`Packer::unpack`] fills.
    template: State,
    g: u32,
    bits: u32,
    /// Bits of [`State::memo`] the key keeps, and their mask.
    memo_bits: u32,
    memo_mask: u32,
    /// 1 when the device has updates ([`Device::updates`]): the key keeps
    /// whether one is in flight.
    update_bits: u32,
    /// [`VmState::index`] by the state's byte, without branches (see
    /// [`life_byte`]).
    life_index: [u8; 256],
    /// Whether slots of equal size form one group (every slot the same
    /// size), the common case for symmetry reduction.
    uniform: bool,
    /// Per slot `v` (and `MAX_VMS` for none), over the words of
    /// [`State::vm_bytes`]: ones on the bytes of every slot of the device
    /// but `v` (see [`Packer::pack_step`]).
    other_slots: [[u64; VM_WORDS]; MAX_VMS + 1],
    /// Words of [`State::vm_bytes`] the device's slots use.
    words: usize,
    /// Bits of one slot's part of the key, and where each slot's part
    /// starts.
    slot_bits: u32,
    slot_shift: [u32; MAX_VMS],
    /// Bits of every slot's part (the key below the head).
    body_bits: u32,
}

/// Words of eight bytes that [`State::vm_bytes`] fills.
const VM_WORDS: usize = (3 * MAX_VMS).div_ceil(8);

impl Packer {
    /// A packer with room for a `G`-bit memo (version 1's layout).
    pub fn new(device: &Device) -> Packer {
        Packer::with_memo(device, u32::from(device.gpus()))
    }

    /// A packer for the states of `allocator` on `device`: the memo takes
    /// the bits the allocator declares.
    pub fn for_allocator<A: crate::Allocator + ?Sized>(device: &Device, allocator: &A) -> Packer {
        Packer::with_memo(device, allocator.memo_bits(device).min(32))
    }

    /// A packer whose keys keep `memo_bits` (at most 32) low bits of the
    /// memo.
    pub fn with_memo(device: &Device, memo_bits: u32) -> Packer {
        let memo_bits = memo_bits.min(32);
        let g = u32::from(device.gpus());
        let v = device.vms() as u32;
        let sizes = device.sizes();
        Packer {
            device: *device,
            template: device.initial(),
            life_index: {
                let mut t = [0u8; 256];
                for life in VmState::ALL {
                    t[usize::from(life_byte(life))] = life.index();
                }
                t
            },
            g,
            bits: 2 * g + memo_bits + u32::from(device.updates()) + 2 + v * (4 + g),
            update_bits: u32::from(device.updates()),
            memo_bits,
            memo_mask: if memo_bits >= 32 {
                u32::MAX
            } else {
                (1u32 << memo_bits) - 1
            },
            uniform: sizes.windows(2).all(|w| w[0] == w[1]),
            words: (3 * v as usize).div_ceil(8),
            slot_bits: 4 + g,
            slot_shift: std::array::from_fn(|i| (v.saturating_sub(1 + i as u32)) * (4 + g)),
            body_bits: v * (4 + g),
            other_slots: {
                let mut masks = [[0u64; VM_WORDS]; MAX_VMS + 1];
                for (changed, mask) in masks.iter_mut().enumerate() {
                    for byte in 0..3 * v as usize {
                        if byte / 3 != changed {
                            mask[byte / 8] |= 0xff << (8 * (byte % 8));
                        }
                    }
                }
                masks
            },
        }
    }

    /// Whether `state` has a part the key does not keep: memo bits above
    /// the allocator's, or an update in flight on a device without updates.
    #[inline(always)]
    fn unkept(&self, state: &State) -> bool {
        (state.memo & !self.memo_mask != 0) | (state.updating & (self.update_bits == 0))
    }

    /// Bits a packed state of this device takes.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Whether a state packs exactly into a `u64`.
    pub fn fits_u64(&self) -> bool {
        self.bits <= 64
    }

    /// Bits of one VM slot's part of the key: its state's index (4 bits),
    /// then what it holds (one bit per GPU).
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// Where slot `vm`'s part of the key starts (slot 0 is the highest).
    pub fn slot_shift(&self, vm: usize) -> u32 {
        self.slot_shift[vm]
    }

    /// Bits of every slot's part: the head (`free`, `held[kube]`,
    /// memo, Kubernetes' state) starts here.
    pub fn body_bits(&self) -> u32 {
        self.body_bits
    }

    /// One VM's part of the key: its state's index, then what it holds.
    #[inline]
    fn vm_code(&self, state: &State, vm: usize) -> u64 {
        let v = &state.vms[vm];
        let index = self.life_index[usize::from(life_byte(v.life))];
        (u64::from(index) << self.g) | u64::from(v.held)
    }

    #[inline]
    fn head(&self, state: &State) -> u64 {
        let g = self.g;
        let mut key = u64::from(state.free);
        key = (key << g) | u64::from(state.kube_held);
        key = (key << self.memo_bits) | u64::from(state.memo & self.memo_mask);
        key = (key << self.update_bits) | u64::from(state.updating);
        (key << 2) | u64::from(state.kube.index())
    }

    /// Each VM's part of the key, in slot order, into `codes`.
    #[inline]
    pub fn codes(&self, state: &State, codes: &mut [u64; MAX_VMS]) {
        for (vm, c) in codes[..self.device.vms()].iter_mut().enumerate() {
            *c = self.vm_code(state, vm);
        }
    }

    /// The key of `next`, a state reached from `base` whose VM codes are
    /// `base_codes` ([`Packer::codes`]): equal to [`Packer::pack`]`(next)`,
    /// but recomputes only the parts of VMs that changed (usually one).
    #[inline]
    pub fn pack_from(&self, base: &State, base_codes: &[u64; MAX_VMS], next: &State) -> u64 {
        let shift = 4 + self.g;
        let mut key = self.head(next);
        for (vm, &base_code) in base_codes[..self.device.vms()].iter().enumerate() {
            let c = if next.vms[vm] == base.vms[vm] {
                base_code
            } else {
                self.vm_code(next, vm)
            };
            key = (key << shift) | c;
        }
        key
    }

    /// [`Packer::pack`], and also whether `next` is exactly the state its
    /// key unpacks to: false when a set holds a GPU the device does not
    /// have, or a slot's size is not the device's (a policy may do either;
    /// the key keeps neither). Branch-free: on the checker's states,
    /// re-encoding every VM costs less than asking which ones changed.
    #[inline]
    pub fn pack_exact(&self, next: &State) -> (u64, bool) {
        let shift = 4 + self.g;
        let mut key = self.head(next);
        let mut stray = next.free | next.kube_held;
        let mut resized = u8::from(self.unkept(next));
        for (vm, t) in next.vms[..self.device.vms()].iter().zip(&self.template.vms) {
            stray |= vm.held;
            resized |= vm.size ^ t.size;
            let index = self.life_index[usize::from(life_byte(vm.life))];
            key = (key << shift) | (u64::from(index) << self.g) | u64::from(vm.held);
        }
        (key, stray & !self.device.all() == 0 && resized == 0)
    }

    /// Whether `next` has every VM slot of `parent` but `vm` (every slot,
    /// for `None`) unchanged: a few word compares over
    /// [`State::vm_bytes`].
    #[inline(always)]
    pub fn unchanged_but(&self, parent: &State, next: &State, vm: Option<usize>) -> bool {
        let mask = &self.other_slots[vm.unwrap_or(MAX_VMS)];
        let (pb, nb) = (parent.vm_bytes(), next.vm_bytes());
        let mut diff = 0u64;
        for ((p, n), m) in pb
            .chunks_exact(8)
            .zip(nb.chunks_exact(8))
            .zip(mask)
            .take(self.words)
        {
            let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("eight bytes"));
            diff |= (word(p) ^ word(n)) & m;
        }
        diff == 0
    }

    /// [`Packer::pack_exact`]`(next)` for a state `next` made by one step
    /// from `parent`, whose key is `parent_key`, where the step was an action
    /// of slot `vm` (`None` for Kubernetes' actions and events). When the
    /// step changed no other slot ([`Packer::unchanged_but`]; every
    /// built-in policy's steps) the key is the parent's with the head and
    /// that slot's part replaced; otherwise (a policy may change any slot)
    /// it is packed in full. The result is the same either way.
    ///
    /// `parent` must be exact ([`Packer::pack_exact`] said true for it), as
    /// every state the checker expands is.
    #[inline(always)]
    pub fn pack_step(
        &self,
        parent_key: u64,
        parent: &State,
        next: &State,
        vm: Option<usize>,
    ) -> (u64, bool) {
        if self.unchanged_but(parent, next, vm) {
            self.repack(parent_key, next, vm)
        } else {
            self.pack_exact(next)
        }
    }

    /// [`Packer::pack_step`] when [`Packer::unchanged_but`] said true.
    #[inline(always)]
    pub fn repack(&self, parent_key: u64, next: &State, vm: Option<usize>) -> (u64, bool) {
        let mut stray = next.free | next.kube_held;
        let mut key =
            (parent_key & ((1u64 << self.body_bits) - 1)) | (self.head(next) << self.body_bits);
        let mut resized = u8::from(self.unkept(next));
        if let Some(changed) = vm.filter(|&v| v < self.device.vms()) {
            let v = &next.vms[changed];
            stray |= v.held;
            resized |= v.size ^ self.template.vms[changed].size;
            let at = self.slot_shift[changed];
            key = (key & !(((1u64 << self.slot_bits) - 1) << at))
                | (self.vm_code(next, changed) << at);
        }
        (key, stray & !self.device.all() == 0 && resized == 0)
    }

    /// [`Packer::pack_canonical_from`], and whether `next` round-trips
    /// (as [`Packer::pack_exact`] says).
    #[inline]
    pub fn pack_canonical_from_exact(
        &self,
        base: &State,
        base_codes: &[u64; MAX_VMS],
        next: &State,
    ) -> (u64, bool) {
        let n = self.device.vms();
        let all = self.device.all();
        let mut stray = (next.free | next.kube_held) & !all;
        let mut resized = self.unkept(next);
        let mut codes = [0u64; MAX_VMS];
        for (vm, c) in codes[..n].iter_mut().enumerate() {
            *c = if next.vms[vm] == base.vms[vm] {
                base_codes[vm]
            } else {
                stray |= next.vms[vm].held & !all;
                resized |= next.vms[vm].size != base.vms[vm].size;
                self.vm_code(next, vm)
            };
        }
        (
            self.pack_codes_canonical(next, codes),
            stray == 0 && !resized,
        )
    }

    /// The canonical key ([`Packer::pack_canonical`]) of `next`, reached
    /// from `base` with VM codes `base_codes`.
    #[inline]
    pub fn pack_canonical_from(
        &self,
        base: &State,
        base_codes: &[u64; MAX_VMS],
        next: &State,
    ) -> u64 {
        let n = self.device.vms();
        let mut codes = [0u64; MAX_VMS];
        for (vm, c) in codes[..n].iter_mut().enumerate() {
            *c = if next.vms[vm] == base.vms[vm] {
                base_codes[vm]
            } else {
                self.vm_code(next, vm)
            };
        }
        self.pack_codes_canonical(next, codes)
    }

    /// The packed key; exact only when [`Packer::fits_u64`].
    #[inline]
    pub fn pack(&self, state: &State) -> u64 {
        self.pack_of(state, self.device.vms())
    }

    /// [`Packer::pack`] with the device's number of slots passed in (see
    /// [`invariant::check_state_of`](crate::invariant)).
    #[inline(always)]
    fn pack_of(&self, state: &State, vms: usize) -> u64 {
        debug_assert_eq!(vms, self.device.vms());
        let shift = 4 + self.g;
        let mut key = self.head(state);
        for vm in 0..vms {
            key = (key << shift) | self.vm_code(state, vm);
        }
        key
    }

    /// The packed key of the state's symmetry class: the `(state, held)`
    /// codes of VMs of the same size are sorted, so states that differ only
    /// by a permutation of same-size VMs get the same key. Sound for any
    /// policy that treats VM slots alike (every built-in one does: which
    /// GPUs are taken never depends on the slot number).
    #[inline]
    pub fn pack_canonical(&self, state: &State) -> u64 {
        let mut codes = [0u64; MAX_VMS];
        self.codes(state, &mut codes);
        self.pack_codes_canonical(state, codes)
    }

    #[inline]
    fn pack_codes_canonical(&self, state: &State, mut codes: [u64; MAX_VMS]) -> u64 {
        let n = self.device.vms();
        if self.uniform {
            insertion_sort(&mut codes[..n]);
        } else {
            // Sort each size group in place, over the slots of that size.
            let sizes = self.device.sizes();
            let mut group = [0u64; MAX_VMS];
            let mut slots = [0usize; MAX_VMS];
            let mut done = [false; MAX_VMS];
            for first in 0..n {
                if done[first] {
                    continue;
                }
                let mut m = 0;
                for s in first..n {
                    if sizes[s] == sizes[first] {
                        done[s] = true;
                        slots[m] = s;
                        group[m] = codes[s];
                        m += 1;
                    }
                }
                insertion_sort(&mut group[..m]);
                for i in 0..m {
                    codes[slots[i]] = group[i];
                }
            }
        }
        let shift = 4 + self.g;
        let mut key = self.head(state);
        for c in &codes[..n] {
            key = (key << shift) | c;
        }
        key
    }

    /// The state a key was packed from (the inverse of [`Packer::pack`]
    /// when [`Packer::fits_u64`]).
    #[inline]
    pub fn unpack(&self, mut key: u64) -> State {
        let g = self.g;
        let gmask = (1u64 << g) - 1;
        let mut state = self.template;
        for vm in (0..self.device.vms()).rev() {
            state.vms[vm].held = (key & gmask) as u8;
            key >>= g;
            state.vms[vm].life = VmState::ALL[(key & 0xf) as usize];
            key >>= 4;
        }
        state.kube = KubeState::ALL[(key & 3) as usize];
        key >>= 2;
        state.updating = key & u64::from(self.update_bits) != 0;
        key >>= self.update_bits;
        state.memo = (key & u64::from(self.memo_mask)) as u32;
        key >>= self.memo_bits;
        state.kube_held = (key & gmask) as u8;
        key >>= g;
        state.free = (key & gmask) as u8;
        state
    }

    /// A 64-bit identity for counting distinct states: the exact key when
    /// the state fits in 64 bits, else a 64-bit fingerprint of every field
    /// of the identity (collisions then possible but, for the few thousand
    /// states of one walk, below one in 10^12).
    #[inline]
    pub fn fingerprint(&self, state: &State) -> u64 {
        self.fingerprint_of(state, self.device.vms())
    }

    /// [`Packer::fingerprint`] with the device's number of slots passed
    /// in (see [`invariant::check_state_of`](crate::invariant)).
    #[inline(always)]
    pub(crate) fn fingerprint_of(&self, state: &State, vms: usize) -> u64 {
        if self.fits_u64() {
            return self.pack_of(state, vms);
        }
        let mut h = mix(self.head(state));
        for vm in 0..vms {
            h = mix(h ^ self.vm_code(state, vm));
        }
        h
    }
}

/// The byte that represents `life` in memory ([`VmState::repr_byte`]):
/// [`VmState::index`] is a `match` that compiles to an indirect jump,
/// mispredicted on almost every call when states are random; a 256-entry
/// table indexed by this byte gives the same number without a branch.
#[inline]
fn life_byte(life: VmState) -> u8 {
    life.repr_byte()
}

#[inline]
fn insertion_sort(a: &mut [u64]) {
    for i in 1..a.len() {
        let x = a[i];
        let mut j = i;
        while j > 0 && a[j - 1] > x {
            a[j] = a[j - 1];
            j -= 1;
        }
        a[j] = x;
    }
}

/// A fixed 64-bit mixer (SplitMix64's finaliser after a rotation).
#[inline]
pub fn mix(x: u64) -> u64 {
    crate::seed::splitmix64(x.rotate_left(17))
}

/// A set of `u64` keys: open addressing over buckets of eight keys, one
/// 64-byte cache line each; `u64::MAX` marks an empty slot (no packed state
/// is all ones: a VM state index is at most 9). A key lives in its home
/// bucket (the high half of hash x buckets), or, when that bucket was full,
/// in the next one with room (linear probing by bucket). Nothing is ever
/// removed, so a bucket's keys fill its slots from the left and a search
/// can stop at the first bucket with an empty slot. A lookup compares all
/// eight keys of a bucket without a branch per slot: almost every key is
/// found, or placed, in its home bucket, so the one branch that remains
/// (was it there?) is the only one a lookup can mispredict. The bucket
/// count is not a power of two; the table grows by half when it is 3/4
/// full, so it is always between 1/2 and 3/4 full once it has grown: 10.7
/// to 16 bytes per key.
#[derive(Clone, Debug)]
pub struct KeySet {
    buckets: Vec<Bucket>,
    len: usize,
}

/// Eight key slots in one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket([u64; 8]);

const EMPTY: u64 = u64::MAX;
const EMPTY_BUCKET: Bucket = Bucket([EMPTY; 8]);

impl Bucket {
    /// One bit per slot: set where the slot holds `key`.
    #[inline(always)]
    fn matches(&self, key: u64) -> u32 {
        let mut m = 0u32;
        for (j, &k) in self.0.iter().enumerate() {
            m |= u32::from(k == key) << j;
        }
        m
    }
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet::with_capacity(16)
    }
}

impl KeySet {
    /// A set that holds `n` keys before it grows.
    pub fn with_capacity(n: usize) -> KeySet {
        KeySet {
            buckets: vec![EMPTY_BUCKET; (n.max(4) * 4 / 3).div_ceil(8) + 1],
            len: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Bytes the slots take.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
    /// Empties the set, keeping its slots.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.buckets.fill(EMPTY_BUCKET);
            self.len = 0;
        }
    }
    #[inline(always)]
    fn home(key: u64, buckets: usize) -> usize {
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((u128::from(h) * buckets as u128) >> 64) as usize
    }
    /// Inserts `key`; true when it was not there yet.
    #[inline]
    pub fn insert(&mut self, key: u64) -> bool {
        debug_assert_ne!(key, EMPTY);
        let n = self.buckets.len();
        let mut i = Self::home(key, n);
        loop {
            let b = &mut self.buckets[i];
            if b.matches(key) != 0 {
                return false;
            }
            let empty = b.matches(EMPTY);
            if empty != 0 {
                b.0[empty.trailing_zeros() as usize] = key;
                self.len += 1;
                if self.len * 4 > n * 8 * 3 {
                    self.grow();
                }
                return true;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }
    pub fn contains(&self, key: u64) -> bool {
        let n = self.buckets.len();
        let mut i = Self::home(key, n);
        loop {
            let b = &self.buckets[i];
            if b.matches(key) != 0 {
                return true;
            }
            if b.matches(EMPTY) != 0 {
                return false;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.buckets);
        let n = old.len() + old.len() / 2;
        self.buckets = vec![EMPTY_BUCKET; n];
        for b in &old {
            for &k in b.0.iter().filter(|&&k| k != EMPTY) {
                let mut i = Self::home(k, n);
                loop {
                    let empty = self.buckets[i].matches(EMPTY);
                    if empty != 0 {
                        self.buckets[i].0[empty.trailing_zeros() as usize] = k;
                        break;
                    }
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
            }
        }
    }
}

/// A set of `u64` keys that several threads insert into at once, each key
/// with a small tag (the checker's: the state invariants its state
/// violates): the layout of [`KeySet`] (buckets of eight slots, one cache
/// line each, `u64::MAX` for an empty slot) with atomic slots, a slot
/// holding `key << tag_bits | tag`. A key is claimed by a compare-and-swap
/// on the first empty slot of the first bucket with room; slots are
/// written once and fill each bucket from the left, so a search can still
/// stop at the first bucket with an empty slot, and two threads inserting
/// the same key agree on which of them inserted it (and on its tag).
///
/// The table does not grow while it is shared: the owner calls
/// [`SharedKeySet::reserve`] between rounds of insertions, with how many
/// keys it holds and a bound on how many the next round can add, and a
/// round stops before it could pass [`SharedKeySet::room`] (the checker's
/// rounds also stop when the set is [`SharedKeySet::due_to_grow`]).
#[derive(Debug)]
pub struct SharedKeySet {
    buckets: Buckets,
    tag_bits: u32,
}

#[derive(Debug)]
#[repr(C, align(64))]
struct AtomicBucket([AtomicU64; 8]);

/// The buckets of a [`SharedKeySet`], every slot empty when made or
/// added, filled with `u64::MAX` bytes at once.
///
/// A table of 4 MiB or more is aligned to 2 MiB and, on Linux, the kernel
/// is asked to back it with huge pages (`madvise(MADV_HUGEPAGE)`): probes
/// land anywhere in the table, and with 4 KiB pages nearly every one would
/// also miss the processor's address-translation cache. The advice changes
/// nothing but timing, and is ignored where huge pages are off.
///
/// On Linux such a table lives at the start of a reservation of address
/// space ([`RESERVE`] bytes, mapped without reserving memory for it), and
/// grows into it in place ([`Buckets::extend`]): only the added buckets are
/// new memory, where a new table would fault in every page again (which on
/// the benchmark machine, a virtual one, costs more than the rehash).
/// Elsewhere, or when the reservation cannot be made, a table is one heap
/// allocation and growing makes a new one.
struct Buckets {
    ptr: std::ptr::NonNull<AtomicBucket>,
    len: usize,
    source: Source,
}

/// Where the memory of [`Buckets`] comes from.
#[derive(Clone, Copy)]
enum Source {
    Heap(std::alloc::Layout),
    /// A mapping of `bytes` bytes at `base` (the buckets start at the first
    /// 2 MiB boundary in it), room for `most` buckets.
    #[cfg(target_os = "linux")]
    Mapped {
        base: *mut u8,
        bytes: usize,
        most: usize,
    },
}

// SAFETY: `Buckets` owns its memory, like a `Box<[AtomicBucket]>`, and
// `AtomicBucket` is `Send` and `Sync`.
unsafe impl Send for Buckets {}
// SAFETY: as above; shared access only hands out `&[AtomicBucket]`.
unsafe impl Sync for Buckets {}

/// Tables this large get huge pages (and, on Linux, room to grow in
/// place). Small in tests, so that they exercise it.
const HUGE: usize = if cfg!(test) { 64 << 10 } else { 4 << 20 };
/// The huge page size the alignment is for.
const HUGE_PAGE: usize = 2 << 20;
/// The address space a growing table reserves: 64 GiB, of which only the
/// buckets in use are ever touched (the rest is never backed by memory).
#[cfg(target_os = "linux")]
const RESERVE: usize = 64 << 30;

impl Buckets {
    fn new(len: usize) -> Buckets {
        let len = len.max(1);
        let bytes = len * std::mem::size_of::<AtomicBucket>();
        #[cfg(target_os = "linux")]
        if bytes >= HUGE
            && let Some(buckets) = Self::mapped(len)
        {
            return buckets;
        }
        let align = if bytes >= HUGE {
            HUGE_PAGE
        } else {
            std::mem::align_of::<AtomicBucket>()
        };
        let layout = std::alloc::Layout::from_size_align(bytes, align).expect("a table size");
        // SAFETY: `layout` has a nonzero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw.cast::<AtomicBucket>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        if align == HUGE_PAGE {
            advise_huge_pages(raw, bytes);
        }
        // SAFETY: the allocation holds `len` buckets.
        unsafe { fill_empty(raw, bytes) };
        // Now `len` initialised buckets.
        Buckets {
            ptr,
            len,
            source: Source::Heap(layout),
        }
    }

    /// `len` empty buckets at the start of a new reservation, or `None`
    /// when the kernel refuses it (a limit on address space, say).
    #[cfg(target_os = "linux")]
    fn mapped(len: usize) -> Option<Buckets> {
        let bytes = RESERVE + HUGE_PAGE;
        let most = RESERVE / std::mem::size_of::<AtomicBucket>();
        if len > most {
            return None;
        }
        // SAFETY: a new private anonymous mapping; no memory of ours is
        // touched. MAP_NORESERVE: the kernel sets no memory aside for the
        // part never used.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base.cast::<u8>();
        let start = base.wrapping_add(base.align_offset(HUGE_PAGE));
        advise_huge_pages(start, RESERVE);
        let ptr = std::ptr::NonNull::new(start.cast::<AtomicBucket>())?;
        // SAFETY: the first `len` buckets lie in the mapping, past `start`.
        unsafe { fill_empty(start, len * std::mem::size_of::<AtomicBucket>()) };
        Some(Buckets {
            ptr,
            len,
            source: Source::Mapped { base, bytes, most },
        })
    }

    /// Grows to `len` buckets in place, the new ones empty, when the
    /// memory allows it (see [`Buckets`]); false (and nothing changed)
    /// when not.
    fn extend(&mut self, len: usize) -> bool {
        #[cfg(target_os = "linux")]
        if let Source::Mapped { most, .. } = self.source
            && (self.len..=most).contains(&len)
        {
            let size = std::mem::size_of::<AtomicBucket>();
            let from = self.ptr.as_ptr().cast::<u8>().wrapping_add(self.len * size);
            // SAFETY: buckets `self.len..len` lie in the mapping.
            unsafe { fill_empty(from, (len - self.len) * size) };
            self.len = len;
            return true;
        }
        let _ = len;
        false
    }
}

/// Sets `bytes` bytes at `p` to all ones, `EMPTY` in every slot (an
/// `AtomicU64` has the representation of a `u64`), in parallel on the
/// current rayon pool: the first touch of each page, by the kernel, is
/// most of the cost.
///
/// # Safety
/// `[p, p + bytes)` must be memory of ours that nothing else uses now.
unsafe fn fill_empty(p: *mut u8, bytes: usize) {
    const PART: usize = 1 << 20;
    let base = p as usize;
    (0..bytes.div_ceil(PART)).into_par_iter().for_each(|i| {
        let start = i * PART;
        // SAFETY: `[start, start + n)` lies in `[p, p + bytes)`, which the
        // caller gave us, and the parts are disjoint.
        unsafe { std::ptr::write_bytes((base + start) as *mut u8, 0xff, PART.min(bytes - start)) };
    });
}

impl std::ops::Deref for Buckets {
    type Target = [AtomicBucket];
    fn deref(&self) -> &[AtomicBucket] {
        // SAFETY: `ptr` points to `len` initialised buckets that live as
        // long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Buckets {
    fn deref_mut(&mut self) -> &mut [AtomicBucket] {
        // SAFETY: as for `deref`, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buckets {
    fn drop(&mut self) {
        match self.source {
            // SAFETY: allocated in `Buckets::new` with this layout; the
            // buckets need no drop.
            Source::Heap(layout) => unsafe {
                std::alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout)
            },
            // SAFETY: the mapping made in `Buckets::mapped`, used by
            // nothing else; the buckets need no drop.
            #[cfg(target_os = "linux")]
            Source::Mapped { base, bytes, .. } => unsafe {
                libc::munmap(base.cast(), bytes);
            },
        }
    }
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buckets({})", self.len)
    }
}

/// Asks Linux to back `[p, p + len)` with huge pages (a hint; errors are
/// ignored: the table works the same without them).
#[cfg(target_os = "linux")]
fn advise_huge_pages(p: *mut u8, len: usize) {
    // SAFETY: `[p, p + len)` is memory of ours, aligned to a page;
    // `madvise` with this advice reads and writes no memory.
    unsafe { libc::madvise(p.cast(), len, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: *mut u8, _: usize) {}

impl SharedKeySet {
    /// A set that holds `n` keys before it needs to grow, with tags of
    /// `tag_bits` bits (at most 8). Keys must be below `2^(64 - tag_bits)`,
    /// and a key with all those bits set must not have a tag with all bits
    /// set (its slot would read as empty).
    pub fn with_capacity(n: usize, tag_bits: u32) -> SharedKeySet {
        assert!(tag_bits <= 8, "tags of at most 8 bits");
        SharedKeySet {
            buckets: Buckets::new(Self::buckets_for(n)),
            tag_bits,
        }
    }
    fn buckets_for(n: usize) -> usize {
        (n.max(4) * 4 / 3).div_ceil(8) + 1
    }
    /// Bytes the slots take.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<AtomicBucket>()
    }
    /// Makes room for `additional` more keys in a set that holds `len`
    /// (counted by the caller: the inserts that found their key absent).
    /// The table grows by half when `len` passes 3/4 of its slots, and to
    /// more when `len + additional` would pass 15/16 of them, so a round
    /// within its bound never fills it. The rehash runs on the current
    /// rayon pool.
    pub fn reserve(&mut self, len: usize, additional: usize) {
        self.reserve_expecting(len, additional, usize::MAX);
    }
    /// [`SharedKeySet::reserve`], told that about `expected` more keys
    /// will come in all (a guess, which decides only when the table
    /// grows): past 3/4 full it does not grow while those would leave it
    /// at most 7/8 full, so a search that is nearly done is not made to
    /// move every key for its last few. A wrong guess costs time, never
    /// room: a round's bound past 15/16 still grows it.
    pub fn reserve_expecting(&mut self, len: usize, additional: usize, expected: usize) {
        // Grow when 3/4 full, unless the rest is expected to fit in 7/8;
        // and, so that the round cannot fill it, when the round's bound
        // would pass 15/16.
        let need = len + additional;
        if !self.due_to_grow(len, expected) && additional <= self.room(len) {
            return;
        }
        let n = (self.buckets.len() + self.buckets.len() / 2).max((need * 16 / 15).div_ceil(8) + 1);
        let before = self.buckets.len();
        if self.buckets.extend(n) {
            self.rehash_in_place(before);
            return;
        }
        let old = std::mem::replace(&mut self.buckets, Buckets::new(n));
        old.par_chunks(1024).for_each(|part| {
            for slot in part.iter().flat_map(|b| &b.0) {
                let stored = slot.load(Ordering::Relaxed);
                if stored != EMPTY {
                    self.place(stored, self.home(stored >> self.tag_bits));
                }
            }
        });
    }
    /// Moves every key to its place in the table's new size after
    /// [`Buckets::extend`] from `before` buckets, in place, in steps from
    /// the end of the table down, each on every worker of the current
    /// rayon pool.
    ///
    /// A key's new home is its old one scaled by `len / before` (or one
    /// less), so the keys of the old buckets `[low, top)`, with `low` =
    /// `top * before / len` rounded up, have new homes at `top` or above,
    /// where the steps before have emptied every old bucket: a step empties
    /// `[low, top)` and places those keys in `[top, len)`, each worker
    /// taking a stretch of the old buckets and the stretch of the new ones
    /// their keys' homes fall in, so that no two workers touch the same
    /// bucket. The few keys that do not fit that pattern (a new home
    /// outside the worker's stretch, from a key that ran far past its old
    /// home, or a search that runs past the stretch's end) wait in a list
    /// and are placed last, as any insertion is.
    fn rehash_in_place(&mut self, before: usize) {
        let tag_bits = self.tag_bits;
        let len = self.buckets.len();
        let home = |value: u64| KeySet::home(value >> tag_bits, len);
        let workers = rayon::current_num_threads().max(1);
        let buckets: &mut [AtomicBucket] = &mut self.buckets;
        let mut later = Vec::new();
        let mut top = before;
        while top > 0 {
            let low = (top * before).div_ceil(len).min(top - 1);
            let (old, new) = buckets.split_at_mut(top);
            // Worker `i` empties old buckets from `low + i * width` and
            // fills new ones from `top + starts[i]`.
            let width = (top - low).div_ceil(workers);
            let mut starts: Vec<usize> = (0..workers)
                .map(|i| ((low + i * width) * len).div_ceil(before).clamp(top, len) - top)
                .collect();
            starts[0] = 0;
            let mut work = Vec::with_capacity(workers);
            let (mut old, mut new) = (&mut old[low..], new);
            for i in 0..workers {
                let (read, rest) = old.split_at_mut(width.min(old.len()));
                old = rest;
                let end = starts.get(i + 1).map_or(new.len(), |&s| s - starts[i]);
                let (write, rest) = std::mem::take(&mut new).split_at_mut(end);
                new = rest;
                work.push((read, top + starts[i], write));
            }
            let waiting: Vec<Vec<u64>> = work
                .into_par_iter()
                .map(|(read, from, write)| {
                    let mut waiting = Vec::new();
                    for bucket in read.iter_mut() {
                        let values = bucket
                            .0
                            .each_mut()
                            .map(|s| std::mem::replace(s.get_mut(), EMPTY));
                        for value in values.into_iter().filter(|&v| v != EMPTY) {
                            let h = home(value);
                            let placed = (from..from + write.len()).contains(&h)
                                && place_from(write, value, h - from);
                            if !placed {
                                waiting.push(value);
                            }
                        }
                    }
                    waiting
                })
                .collect();
            later.extend(waiting.into_iter().flatten());
            top = low;
        }
        for value in later {
            let h = home(value);
            if !place_from(&mut buckets[..], value, h) {
                assert!(place_from(&mut buckets[..h], value, 0), "a table with room");
            }
        }
    }

    /// Whether [`SharedKeySet::reserve_expecting`] would grow a set that
    /// holds `len` keys, with about `expected` more to come, whatever the
    /// round's bound: past 3/4 full, unless those would leave it at most
    /// 7/8 full. A round may stop taking work here, to let it grow.
    pub fn due_to_grow(&self, len: usize, expected: usize) -> bool {
        let slots = self.buckets.len() * 8;
        len * 4 > slots * 3 && len.saturating_add(expected) > slots / 8 * 7
    }

    /// How many more keys a set that holds `len` takes before it is
    /// 15/16 full: what a round of insertions may add without a
    /// [`SharedKeySet::reserve`] (which grows it at 3/4).
    pub fn room(&self, len: usize) -> usize {
        (self.buckets.len() * 8 * 15 / 16).saturating_sub(len)
    }

    /// The bucket where a search for `key` begins.
    #[inline(always)]
    pub fn home(&self, key: u64) -> usize {
        KeySet::home(key, self.buckets.len())
    }
    /// Asks the processor to start loading bucket `home` and the one after
    /// it (a hint: it changes nothing but timing). Up to 3/4 full, about
    /// one key in ten lives past its home bucket, and an insertion finds
    /// its home full about as often; without the second line each of those
    /// waits for memory (see BENCHMARKS.md, "Checker: one core past 5 M
    /// states/s").
    #[inline(always)]
    pub fn prefetch(&self, home: usize) {
        prefetch_line((&self.buckets[home] as *const AtomicBucket).cast::<i8>());
        if let Some(next) = self.buckets.get(home + 1) {
            prefetch_line((next as *const AtomicBucket).cast::<i8>());
        }
    }
    /// Whether `key` is in its home bucket with tag 0: the common case of
    /// [`SharedKeySet::insert_with`] (which would return `Some(0)`), decided
    /// without a branch per slot (`bucket_holds`). False says nothing:
    /// insert then.
    #[inline(always)]
    pub fn found_untagged(&self, key: u64, home: usize) -> bool {
        bucket_holds(&self.buckets[home], key << self.tag_bits)
    }

    /// Inserts `key` with the tag `tag()` unless it is there: `None` when
    /// this call inserted it (exactly one of the threads inserting a key
    /// does), else `Some` of the tag it was inserted with. `home` is
    /// [`SharedKeySet::home`]`(key)`. The set must have room (see
    /// [`SharedKeySet::reserve`]).
    #[inline(never)]
    pub fn insert_with(&self, key: u64, home: usize, tag: impl FnOnce() -> u64) -> Option<u64> {
        let shifted = key << self.tag_bits;
        let below = 1u64 << self.tag_bits;
        let n = self.buckets.len();
        let mut i = home;
        loop {
            let b = &self.buckets[i].0;
            // One snapshot of the bucket decides both whether the key is
            // here and where the empty slots begin: a slot that was empty
            // in it may have been filled since (perhaps with this key),
            // which the compare-and-swap below sees.
            let (hits, empty) = bucket_scan(&self.buckets[i], key, self.tag_bits);
            if hits != 0 {
                // Written once: this slot still holds what the scan saw.
                let k = b[hits.trailing_zeros() as usize].load(Ordering::Relaxed);
                return Some(k & (below - 1));
            }
            let first_empty = (empty | 1 << 8).trailing_zeros() as usize;
            if first_empty < 8 {
                let value = shifted | tag();
                debug_assert_ne!(value, EMPTY);
                // Slots fill from the left and are written once: try each
                // from the first empty one; a lost race either put this key
                // there (found) or another key (try the next slot).
                for slot in &b[first_empty..] {
                    match slot.compare_exchange(EMPTY, value, Ordering::Relaxed, Ordering::Relaxed)
                    {
                        Ok(_) => return None,
                        Err(k) if (k ^ shifted) < below => return Some(k & (below - 1)),
                        Err(_) => {}
                    }
                }
                // Filled by others meanwhile: the key may still be in a
                // later bucket's first free slots, so go on searching.
                return self.insert_from_next(value, i);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }
    /// Goes on inserting the slot value `value` after bucket `i` filled up
    /// under a racing insertion (rare).
    #[cold]
    fn insert_from_next(&self, value: u64, i: usize) -> Option<u64> {
        let next = if i + 1 == self.buckets.len() {
            0
        } else {
            i + 1
        };
        let tag = value & ((1u64 << self.tag_bits) - 1);
        self.insert_with(value >> self.tag_bits, next, || tag)
    }
    /// Puts a slot value known to be absent (a rehash) in its place.
    /// Every key of a rehash is distinct, so it takes the first empty slot
    /// from its home bucket on without comparing keys.
    #[inline]
    fn place(&self, value: u64, home: usize) {
        let n = self.buckets.len();
        let mut i = home;
        loop {
            let b = &self.buckets[i];
            let (_, mut empty) = bucket_scan(b, EMPTY, 0);
            while empty != 0 {
                let slot = &b.0[empty.trailing_zeros() as usize];
                if slot
                    .compare_exchange(EMPTY, value, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return;
                }
                empty &= empty - 1;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }
}

/// Puts `value` in the first empty slot of `buckets` from bucket `from`
/// on; false when there is none.
fn place_from(buckets: &mut [AtomicBucket], value: u64, from: usize) -> bool {
    for bucket in &mut buckets[from..] {
        if let Some(slot) = bucket
            .0
            .iter_mut()
            .find(|s| s.load(Ordering::Relaxed) == EMPTY)
        {
            *slot.get_mut() = value;
            return true;
        }
    }
    false
}

/// Whether a slot of `bucket` holds `value`, without a branch per slot:
/// the slot that holds it is a different one each time, and a branch per
/// slot is mispredicted there on nearly every probe (the compiler makes
/// such branches of a plain loop over the slots, even of one that builds
/// a mask). On x86-64 the bucket is read as four 16-byte quarters with
/// SSE2, which every x86-64 processor has, and compared eight slots at
/// once.
#[inline(always)]
fn bucket_holds(bucket: &AtomicBucket, value: u64) -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{_mm_movemask_epi8, _mm_or_si128, _mm_set1_epi64x};
        let [a, b, c, d] = sse::load(bucket);
        // SAFETY: SSE2 intrinsics, compiled with SSE2 (the `cfg` above);
        // they touch no memory.
        unsafe {
            let want = _mm_set1_epi64x(value as i64);
            let same = |x| sse::same(x, want);
            let any = _mm_or_si128(
                _mm_or_si128(same(a), same(b)),
                _mm_or_si128(same(c), same(d)),
            );
            _mm_movemask_epi8(any) != 0
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    scalar::holds(bucket, value)
}

/// One read of `bucket`, as masks (bit `j` for slot `j`): the slots that
/// hold `key` with any tag of `tag_bits` bits, and the empty slots. Like
/// [`bucket_holds`], without a branch per slot.
#[inline(always)]
fn bucket_scan(bucket: &AtomicBucket, key: u64, tag_bits: u32) -> (u32, u32) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{
            __m128i, _mm_castsi128_pd, _mm_cvtsi32_si128, _mm_movemask_pd, _mm_set1_epi64x,
            _mm_srl_epi64,
        };
        let quarters = sse::load(bucket);
        // SAFETY: SSE2 intrinsics, compiled with SSE2 (the `cfg` above);
        // they touch no memory.
        unsafe {
            let (want, empty) = (_mm_set1_epi64x(key as i64), _mm_set1_epi64x(EMPTY as i64));
            let shift = _mm_cvtsi32_si128(tag_bits as i32);
            let mask = |x: __m128i| _mm_movemask_pd(_mm_castsi128_pd(x)) as u32;
            let (mut hits, mut empties) = (0, 0);
            for (q, &x) in quarters.iter().enumerate() {
                hits |= mask(sse::same(_mm_srl_epi64(x, shift), want)) << (2 * q);
                empties |= mask(sse::same(x, empty)) << (2 * q);
            }
            (hits, empties)
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    scalar::scan(bucket, key, tag_bits)
}

/// [`bucket_holds`] and [`bucket_scan`] without SSE2, one slot at a time
/// (still without a branch per slot); the tests hold the SSE2 versions to
/// these.
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "sse2", not(test)),
    allow(dead_code)
)]
mod scalar {
    use super::{AtomicBucket, EMPTY};
    use std::sync::atomic::Ordering;

    pub(super) fn holds(bucket: &AtomicBucket, value: u64) -> bool {
        let mut hits = 0u32;
        for (j, slot) in bucket.0.iter().enumerate() {
            hits |= u32::from(slot.load(Ordering::Relaxed) == value) << j;
        }
        std::hint::black_box(hits) != 0
    }

    pub(super) fn scan(bucket: &AtomicBucket, key: u64, tag_bits: u32) -> (u32, u32) {
        let (mut hits, mut empties) = (0u32, 0u32);
        for (j, slot) in bucket.0.iter().enumerate() {
            let k = slot.load(Ordering::Relaxed);
            hits |= u32::from(k >> tag_bits == key) << j;
            empties |= u32::from(k == EMPTY) << j;
        }
        std::hint::black_box((hits, empties))
    }
}

/// The SSE2 parts of [`bucket_holds`] and [`bucket_scan`].
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse {
    use std::arch::x86_64::{__m128i, _mm_and_si128, _mm_cmpeq_epi32, _mm_shuffle_epi32};

    use super::AtomicBucket;

    /// The bucket's four 16-byte quarters, two slots each.
    #[inline(always)]
    pub(super) fn load(bucket: &AtomicBucket) -> [__m128i; 4] {
        let (a, b, c, d): (__m128i, __m128i, __m128i, __m128i);
        // SAFETY: the bucket is 64 bytes aligned to 64, so the four aligned
        // 16-byte loads stay inside it; they only read. Each 8-byte slot is
        // read whole (x86-64 reads an aligned quadword atomically, also as
        // half of an SSE load), as `Ordering::Relaxed` loads of the slots
        // would read them, so a slot that another thread fills meanwhile
        // reads as empty or as its new value, never torn.
        unsafe {
            std::arch::asm!(
                "movdqa {a}, xmmword ptr [{p}]",
                "movdqa {b}, xmmword ptr [{p} + 16]",
                "movdqa {c}, xmmword ptr [{p} + 32]",
                "movdqa {d}, xmmword ptr [{p} + 48]",
                p = in(reg) std::ptr::from_ref(bucket),
                a = out(xmm_reg) a,
                b = out(xmm_reg) b,
                c = out(xmm_reg) c,
                d = out(xmm_reg) d,
                options(nostack, preserves_flags, readonly),
            );
        }
        [a, b, c, d]
    }

    /// All ones in each 64-bit lane where `x` and `y` are equal, else
    /// zeros: both 32-bit halves compared, each result ANDed with its
    /// neighbour's.
    #[inline(always)]
    pub(super) fn same(x: __m128i, y: __m128i) -> __m128i {
        // SAFETY: SSE2 intrinsics, compiled with SSE2 (the `cfg` on the
        // module); they touch no memory.
        unsafe {
            let halves = _mm_cmpeq_epi32(x, y);
            _mm_and_si128(halves, _mm_shuffle_epi32::<0b10_11_00_01>(halves))
        }
    }
}

/// A hint to the processor to start loading the cache line at `p`; nothing
/// is read through it.
#[inline(always)]
fn prefetch_line(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a prefetch only hints the cache, never faults and reads
        // nothing; `p` points into a live allocation.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, Device};
    use crate::policy::Legacy;

    #[test]
    fn pack_agrees_with_state_key_and_round_trips() {
        let d = Device::uniform(2, 3, 1).unwrap();
        let p = Packer::new(&d);
        assert_eq!(p.bits(), 6 + 2 + 3 * 6);
        let mut state = d.initial();
        let mut rng = crate::seed::rng(7);
        for _ in 0..500 {
            let actions = model::enabled(&Legacy, &d, &state);
            let i = (rand::Rng::next_u64(&mut rng) % actions.len() as u64) as usize;
            state = model::step(&Legacy, &d, &state, actions[i]).state;
            let key = p.pack(&state);
            assert_eq!(Some(u128::from(key)), state.key(2, 3));
            assert_eq!(p.unpack(key), state);
        }
    }

    #[test]
    fn key_set_counts_distinct_keys() {
        let mut s = KeySet::with_capacity(2);
        for k in 0..1000u64 {
            assert!(s.insert(k * 7919));
        }
        for k in 0..1000u64 {
            assert!(!s.insert(k * 7919));
            assert!(s.contains(k * 7919));
        }
        assert!(!s.contains(3));
        assert_eq!(s.len(), 1000);
        // Grown by halves at 3/4 load: between 1/2 and 3/4 full.
        let load = s.len() as f64 / (s.bytes() / 8) as f64;
        assert!((0.5..=0.75).contains(&load), "{load}");
    }

    /// A bucket holds a value exactly when some slot equals it in all 64
    /// bits: at every slot, and not for values that share only one
    /// 32-bit half with a slot.
    #[test]
    fn bucket_holds_finds_exact_slots_only() {
        let value = 0x0123_4567_89ab_cdefu64;
        let near = [
            value ^ 1,
            value ^ (1 << 32),
            value ^ (1 << 63),
            value & 0xffff_ffff,
            value & !0xffff_ffff,
            value.rotate_left(32),
            EMPTY,
        ];
        for at in 0..8 {
            let bucket = AtomicBucket(std::array::from_fn(|j| {
                AtomicU64::new(if j == at { value } else { near[j % near.len()] })
            }));
            assert!(bucket_holds(&bucket, value), "at slot {at}");
            for &other in &near[..near.len() - 1] {
                assert!(
                    !bucket_holds(&bucket, other ^ (1 << 20)),
                    "{other:x} at {at}"
                );
            }
            let empty = AtomicBucket(std::array::from_fn(|_| AtomicU64::new(EMPTY)));
            assert!(!bucket_holds(&empty, value));
            assert!(bucket_holds(&empty, EMPTY));
            let others = AtomicBucket(std::array::from_fn(|j| AtomicU64::new(near[j % 7])));
            assert!(!bucket_holds(&others, value));
        }
    }

    /// The SSE2 probes answer as the slot-by-slot ones do, on buckets of
    /// random keys, some repeated, some near the probed one, and empty
    /// slots.
    #[test]
    fn bucket_probes_agree_with_slot_by_slot() {
        let mut rng = crate::seed::rng(3);
        let mut next = || rand::Rng::next_u64(&mut rng);
        for _ in 0..20_000 {
            let base = next() >> 4;
            let pick = |r: u64| match r % 6 {
                0 => EMPTY,
                1 => base,
                2 => base ^ (1 << (r % 60)),
                3 => (base << 3) | ((r >> 8) % 8),
                _ => r >> 3,
            };
            let slots: [u64; 8] = std::array::from_fn(|_| pick(next()));
            let bucket = AtomicBucket(slots.map(AtomicU64::new));
            for probe in [
                base,
                base << 3,
                base ^ 1,
                EMPTY,
                slots[(next() % 8) as usize],
            ] {
                assert_eq!(bucket_holds(&bucket, probe), scalar::holds(&bucket, probe));
                for tag_bits in [0, 3] {
                    assert_eq!(
                        bucket_scan(&bucket, probe, tag_bits),
                        scalar::scan(&bucket, probe, tag_bits)
                    );
                }
            }
        }
    }

    /// The scan's masks: the slots that hold a key with any tag, and the
    /// empty slots, bit `j` for slot `j`.
    #[test]
    fn bucket_scan_masks_keys_with_any_tag_and_empty_slots() {
        let key = 0x0012_3456_789a_bcdeu64;
        let slots = [
            key << 3 | 5,
            EMPTY,
            (key ^ 1) << 3,
            key << 3,
            (key ^ (1 << 40)) << 3 | 5,
            EMPTY,
            key << 3 | 7,
            (key << 3 | 5) ^ (1 << 35),
        ];
        let bucket = AtomicBucket(slots.map(AtomicU64::new));
        assert_eq!(bucket_scan(&bucket, key, 3), (0b0100_1001, 0b0010_0010));
        assert_eq!(
            bucket_scan(&bucket, key << 3, 0),
            (0b0000_1000, 0b0010_0010)
        );
        assert_eq!(bucket_scan(&bucket, key ^ 1, 3), (0b0000_0100, 0b0010_0010));
        let full = AtomicBucket(std::array::from_fn(|j| AtomicU64::new(j as u64)));
        assert_eq!(bucket_scan(&full, 9, 0), (0, 0));
        assert_eq!(bucket_scan(&full, 2, 1), (0b11_0000, 0));
    }

    /// Past 3/4 full, the set grows unless the keys expected to come fit
    /// in 7/8 of it; a round's bound past 15/16 grows it whatever is
    /// expected; and the keys stay.
    #[test]
    fn reserve_expecting_grows_only_for_what_is_to_come() {
        let filled = || {
            let mut set = SharedKeySet::with_capacity(1000, 3);
            let slots = set.bytes() / 8;
            let len = slots * 3 / 4 + 1;
            set.reserve(0, len);
            assert_eq!(set.bytes() / 8, slots, "room for them without growing");
            for k in 0..len as u64 {
                assert_eq!(set.insert_with(k, set.home(k), || k % 8), None);
            }
            (set, slots, len)
        };
        let (mut set, slots, len) = filled();
        set.reserve_expecting(len, 1, slots / 8 * 7 - len);
        assert_eq!(set.bytes() / 8, slots, "the rest fits in 7/8");
        set.reserve_expecting(len, 1, slots / 8 * 7 - len + 1);
        assert!(set.bytes() / 8 > slots, "the rest does not fit");
        for k in 0..len as u64 {
            assert_eq!(set.insert_with(k, set.home(k), || 9), Some(k % 8));
        }
        let (mut set, slots, len) = filled();
        set.reserve(len, 1);
        assert!(set.bytes() / 8 > slots, "no guess: grows at 3/4");
        let (mut set, slots, len) = filled();
        set.reserve_expecting(len, slots, 0);
        assert!(set.bytes() / 8 > slots, "a round's bound still counts");
    }

    /// Threads inserting overlapping keys at once: each key is inserted by
    /// exactly one of them, and every other sees the tag it was inserted
    /// with. (Each key's tag is a function of the key, as the checker's
    /// verdicts are of the state.)
    #[test]
    fn shared_key_set_inserts_each_key_once_under_races() {
        let tag_of = |k: u64| k % 7;
        for round in 0..20u64 {
            let keys: u64 = 20_000;
            let mut set = SharedKeySet::with_capacity(64, 3);
            set.reserve(0, keys as usize);
            let inserted = std::sync::atomic::AtomicU64::new(0);
            std::thread::scope(|scope| {
                for t in 0..4u64 {
                    let (set, inserted) = (&set, &inserted);
                    scope.spawn(move || {
                        for i in 0..keys {
                            // Every thread inserts every key, in its own order.
                            let k = (i * (2 * t + 1) + round) % keys * 7919 + 3;
                            match set.insert_with(k, set.home(k), || tag_of(k)) {
                                None => {
                                    inserted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                Some(tag) => assert_eq!(tag, tag_of(k)),
                            }
                        }
                    });
                }
            });
            assert_eq!(inserted.into_inner(), keys, "round {round}");
        }
    }

    /// Growing in place (tables from 64 KiB up, in tests): every key is
    /// kept exactly once, through clusters that wrap around the end of
    /// the table and crowded stretches whose keys run far past their home.
    #[test]
    fn shared_key_set_grows_in_place_keeping_every_key_once() {
        const INVERSE: u64 = 0xf1de_83e1_9937_733d; // of 0x9e37_79b9_7f4a_7c15
        // A key whose hash (see `KeySet::home`) is `hash`.
        let with_hash = |hash: u64| hash.wrapping_mul(INVERSE);
        let mut keys = Vec::new();
        for j in 1..=600u64 {
            // Hashes just below the top (homes in the last bucket, at
            // every size: a cluster of 75 buckets or more that wraps
            // around), and at a third of the range.
            keys.push(with_hash(0u64.wrapping_sub(j << 20)));
            keys.push(with_hash((u64::MAX / 3).wrapping_sub(j << 16)));
        }
        let mut rng = crate::seed::rng(9);
        keys.extend((0..60_000).map(|_| rand::Rng::next_u64(&mut rng)));
        keys.retain(|&k| k != EMPTY);
        // The rehash splits its steps among the workers of the pool.
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| grow_through(&keys));
        }
    }

    fn grow_through(keys: &[u64]) {
        let mut set = SharedKeySet::with_capacity(8, 0);
        let mut distinct = std::collections::HashSet::new();
        let mut in_place = 0;
        for part in keys.chunks(2_000) {
            let bytes = set.bytes();
            let was_mapped = !matches!(set.buckets.source, Source::Heap(_));
            set.reserve(distinct.len(), part.len());
            if set.bytes() != bytes {
                in_place += usize::from(was_mapped);
                let stored: Vec<u64> = set
                    .buckets
                    .iter()
                    .flat_map(|b| b.0.iter().map(|s| s.load(Ordering::Relaxed)))
                    .filter(|&v| v != EMPTY)
                    .collect();
                assert_eq!(stored.len(), distinct.len(), "each key once");
                for &k in &distinct {
                    assert!(
                        set.found_untagged(k, set.home(k))
                            || set.insert_with(k, set.home(k), || 0) == Some(0)
                    );
                }
            }
            for &k in part {
                let fresh = set.insert_with(k, set.home(k), || 0).is_none();
                assert_eq!(fresh, distinct.insert(k));
            }
        }
        // On Linux, unless the address space is limited (`ulimit -v`),
        // the table reserves room and grows in place.
        #[cfg(target_os = "linux")]
        if Buckets::mapped(1).is_some() {
            assert!(in_place >= 4, "{in_place} growths in place");
        }
        let _ = in_place;
    }

    #[test]
    fn shared_key_set_keeps_every_key_and_tag_as_it_grows() {
        // Keys whose hashes crowd a few places (homes just below each
        // sixteenth of the table, so probes run past where parts of a
        // parallel rehash meet, and the last ones wrap around), among
        // spread ones.
        const INVERSE: u64 = 0xf1de_83e1_9937_733d; // of 0x9e37_79b9_7f4a_7c15
        assert_eq!(INVERSE.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1);
        let mut keys = Vec::new();
        for i in 0..16u64 {
            for j in 0..3_000u64 {
                keys.push(((i << 60).wrapping_sub(j << 40)).wrapping_mul(INVERSE) >> 8);
            }
        }
        let mut rng = crate::seed::rng(5);
        keys.extend((0..150_000).map(|_| rand::Rng::next_u64(&mut rng) >> 8));
        let tag_of = |k: u64| k % 5;
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut set = SharedKeySet::with_capacity(8, 3);
                let mut distinct = std::collections::HashSet::new();
                let mut grown = 0;
                for (step, part) in keys.chunks(5_000).enumerate() {
                    let bytes = set.bytes();
                    set.reserve(distinct.len(), part.len());
                    if set.bytes() != bytes {
                        grown += 1;
                        // Every key survived the rehash, with its tag.
                        for &k in &distinct {
                            assert_eq!(set.insert_with(k, set.home(k), || 7), Some(tag_of(k)));
                        }
                    }
                    for &k in part {
                        let fresh = set.insert_with(k, set.home(k), || tag_of(k)).is_none();
                        assert_eq!(fresh, distinct.insert(k), "step {step}");
                    }
                }
                assert!(grown >= 10, "{grown} growths");
            });
        }
    }

    #[test]
    fn pack_step_is_pack_exact() {
        use crate::policy::faulty::Meddler;
        let d = Device::uniform(2, 4, 1).unwrap();
        let p = Packer::new(&d);
        let policies: [&dyn crate::policy::Allocator; 3] =
            [&Legacy, &crate::policy::Snapshot, &Meddler];
        let mut rng = crate::seed::rng(11);
        let mut changed_others = 0;
        for policy in policies {
            let mut state = d.initial();
            for _ in 0..2000 {
                let key = p.pack(&state);
                let parent = p.unpack(key);
                for a in model::enabled(policy, &d, &parent) {
                    let next = model::step(policy, &d, &parent, a).state;
                    let vm = a.op.takes_vm().then_some(usize::from(a.vm));
                    changed_others += usize::from(!p.unchanged_but(&parent, &next, vm));
                    assert_eq!(
                        p.pack_step(key, &parent, &next, vm),
                        p.pack_exact(&next),
                        "{a:?}"
                    );
                }
                let actions = model::enabled(policy, &d, &state);
                let i = (rand::Rng::next_u64(&mut rng) % actions.len() as u64) as usize;
                state = model::step(policy, &d, &state, actions[i]).state;
            }
        }
        assert!(changed_others > 0);
    }
}
