//! zlib streams whose memory is wiped as it is freed.
//!
//! A deflate stream keeps the last 32 KiB of what it compressed (its
//! window) and the literals of the block it is building; an inflate stream
//! keeps the last 32 KiB it produced. For SSH that is plaintext. flate2's
//! pure-Rust backend owns those buffers and frees them as they are, so the
//! crate runs zlib-rs (through libz-rs-sys, its zlib-compatible interface)
//! with an allocator of our own: every block zlib asks for carries its size
//! in a small header, and is wiped before it goes back to the global
//! allocator. This module is the crate's only `unsafe` code: zlib's
//! interface is a C one, with raw pointers in and out.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ffi::{c_int, c_uint, c_void};

use libz_rs_sys as z;
use zeroize::Zeroize;

/// Room in front of each block for its size; also the blocks' alignment
/// (zlib-rs aligns its own structures inside the block).
const HEADER: usize = 16;

/// zlib's allocation hook: a block of `items * size` bytes behind a header
/// that records the whole allocation's size for [`wiping_free`].
unsafe extern "C" fn wiping_alloc(_: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let total = (items as usize)
        .checked_mul(size as usize)
        .and_then(|n| n.checked_add(HEADER));
    let Some(layout) = total.and_then(|n| Layout::from_size_align(n, HEADER).ok()) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout's size is at least HEADER, so not zero.
    let block = unsafe { std::alloc::alloc(layout) };
    if block.is_null() {
        // Out of memory: what every other allocation of the crate does.
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: the block is at least HEADER bytes and aligned for a usize.
    unsafe {
        block.cast::<usize>().write(layout.size());
        block.add(HEADER).cast()
    }
}

/// zlib's free hook: wipes the whole block, header included, then frees it.
unsafe extern "C" fn wiping_free(_: *mut c_void, ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: zlib hands back only pointers `wiping_alloc` returned, each
    // HEADER bytes into a block whose size the header holds.
    unsafe {
        let block = ptr.cast::<u8>().sub(HEADER);
        let total = block.cast::<usize>().read();
        std::slice::from_raw_parts_mut(block, total).zeroize();
        std::alloc::dealloc(block, Layout::from_size_align_unchecked(total, HEADER));
    }
}

/// What one call of [`Stream::run`] ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Progress was made (or may be made with more room).
    Ok,
    /// No progress was possible (zlib's `Z_BUF_ERROR`), not an error.
    NoProgress,
    /// The stream ended (its final block was read or written).
    StreamEnd,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Deflate,
    Inflate,
}

/// One zlib stream (RFC 1950 framing, a 32 KiB window), either way.
pub(crate) struct Stream {
    /// Boxed: zlib's state points back at its `z_stream` and checks that it
    /// has not moved.
    strm: Box<z::z_stream>,
    direction: Direction,
}

// SAFETY: the stream's state is reached only through `&mut self`; its raw
// pointers point into memory it owns (or, during `run`, into the caller's
// slices).
unsafe impl Send for Stream {}

impl Stream {
    fn blank() -> Box<z::z_stream> {
        Box::new(z::z_stream {
            zalloc: Some(wiping_alloc),
            zfree: Some(wiping_free),
            ..z::z_stream::default()
        })
    }

    /// A deflate stream at `level` (0 to 9).
    ///
    /// zlib refuses to start only for parameters out of range or a version
    /// mismatch, both constants here, or when out of memory, which aborts
    /// in the allocation as everywhere else: the tests below start both.
    pub(crate) fn deflate(level: c_int) -> Stream {
        let mut strm = Self::blank();
        // SAFETY: `strm` is a valid z_stream with our allocator set; the
        // version and size are libz-rs-sys's own.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                level,
                z::Z_DEFLATED,
                15,
                8,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        assert_eq!(rc, z::Z_OK, "deflateInit2_ with constant parameters");
        Stream {
            strm,
            direction: Direction::Deflate,
        }
    }

    /// An inflate stream.
    pub(crate) fn inflate() -> Stream {
        let mut strm = Self::blank();
        // SAFETY: as in `deflate`.
        let rc = unsafe {
            z::inflateInit2_(
                &mut *strm,
                15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        assert_eq!(rc, z::Z_OK, "inflateInit2_ with constant parameters");
        Stream {
            strm,
            direction: Direction::Inflate,
        }
    }

    /// Runs the stream over `input`, appending to `out` within its spare
    /// capacity (never growing it), with a sync flush: zlib's
    /// `deflate`/`inflate` with `Z_SYNC_FLUSH`. Returns how many bytes of
    /// `input` it took and the status; `Err` is zlib's error code. (The
    /// counts come from this call alone: zlib's running totals are C
    /// `unsigned long`s, 32 bits on some targets, and wrap.)
    pub(crate) fn run(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, Status), c_int> {
        let spare = out.spare_capacity_mut();
        let (avail_in, avail_out) = (
            input.len().min(c_uint::MAX as usize),
            spare.len().min(c_uint::MAX as usize),
        );
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = avail_in as c_uint;
        self.strm.next_out = spare.as_mut_ptr().cast();
        self.strm.avail_out = avail_out as c_uint;
        // SAFETY: `next_in` and `next_out` are valid for the lengths given,
        // for the duration of the call, and zlib writes only within
        // `avail_out` bytes of `next_out`.
        let rc = unsafe {
            match self.direction {
                Direction::Deflate => z::deflate(&mut *self.strm, z::Z_SYNC_FLUSH),
                Direction::Inflate => z::inflate(&mut *self.strm, z::Z_SYNC_FLUSH),
            }
        };
        let written = avail_out - self.strm.avail_out as usize;
        let taken = avail_in - self.strm.avail_in as usize;
        // Nothing keeps the caller's buffers past the call.
        self.strm.next_in = std::ptr::null();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        // SAFETY: zlib initialised the first `written` bytes of the spare
        // capacity.
        unsafe { out.set_len(out.len() + written) };
        match rc {
            z::Z_OK => Ok((taken, Status::Ok)),
            z::Z_STREAM_END => Ok((taken, Status::StreamEnd)),
            z::Z_BUF_ERROR => Ok((taken, Status::NoProgress)),
            error => Err(error),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised in its constructor and is ended
        // once; its blocks go back through `wiping_free`.
        unsafe {
            match self.direction {
                Direction::Deflate => z::deflateEnd(&mut *self.strm),
                Direction::Inflate => z::inflateEnd(&mut *self.strm),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_carries_its_size_and_comes_back_whole() {
        // SAFETY: the hooks pair with each other, as zlib uses them.
        unsafe {
            let p = wiping_alloc(std::ptr::null_mut(), 3, 100);
            assert!(!p.is_null());
            assert_eq!(p as usize % HEADER, 0);
            std::slice::from_raw_parts_mut(p.cast::<u8>(), 300).fill(0xaa);
            wiping_free(std::ptr::null_mut(), p);
        }
    }

    #[test]
    fn deflate_then_inflate_gives_the_bytes_back() {
        let (mut d, mut i) = (Stream::deflate(6), Stream::inflate());
        let data: Vec<u8> = (0..50_000u32).map(|k| (k % 13) as u8).collect();
        let mut packed = Vec::with_capacity(60_000);
        assert_eq!(d.run(&data, &mut packed), Ok((data.len(), Status::Ok)));
        let mut back = Vec::with_capacity(60_000);
        assert_eq!(i.run(&packed, &mut back), Ok((packed.len(), Status::Ok)));
        assert_eq!(back, data);
    }
}
