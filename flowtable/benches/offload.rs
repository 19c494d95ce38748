//! Offload fallback benchmarks: software TSO/USO of a 64 KiB GSO frame into
//! MTU-1500 segments, and checksum completion over 64 KiB.
//!
//! Each segmentation iteration cuts the whole frame, writing every segment
//! into one reused buffer (as the daemon would before each send); the
//! reported time is per 64 KiB frame. Divide by the segment count (46 for
//! TCPv4 with 1448-byte segments) for the cost per segment.
//!
//! Run: `cargo bench -p flowtable --bench offload -- --warm-up-time 1
//! --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowtable::offload::{complete_checksum, Segmenter, VirtioNetHdr};

/// One's complement sum of big-endian byte pairs, folded (bench set-up only).
fn sum16(data: &[u8]) -> u16 {
    let mut s: u64 = data
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// A GSO frame: Ethernet, IPv4 or IPv6, TCP (with 12 bytes of timestamp
/// options, as Linux sends) or UDP, `n` payload bytes, partial checksum.
fn gso_frame(v6: bool, udp: bool, n: usize, gso_size: u16) -> (Vec<u8>, VirtioNetHdr) {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&(if v6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
    let l3 = f.len();
    let proto: u8 = if udp { 17 } else { 6 };
    let l4_hlen = if udp { 8 } else { 32 };
    let l4_len = l4_hlen + n;
    if v6 {
        f.extend_from_slice(&0x6000_0000u32.to_be_bytes());
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let c = !sum16(&f[l3..l3 + 20]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let l4 = f.len();
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    if udp {
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    } else {
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
    f.extend((0..n).map(|i| (i * 31) as u8));
    let addrs = if v6 {
        &f[l3 + 8..l3 + 40]
    } else {
        &f[l3 + 12..l3 + 20]
    };
    let mut pseudo = u64::from(sum16(addrs)) + u64::from(proto) + l4_len as u64;
    while pseudo > 0xffff {
        pseudo = (pseudo & 0xffff) + (pseudo >> 16);
    }
    let off = if udp { 6 } else { 16 };
    f[l4 + off..l4 + off + 2].copy_from_slice(&(pseudo as u16).to_be_bytes());
    let gso_type = match (v6, udp) {
        (_, true) => VirtioNetHdr::GSO_UDP_L4,
        (false, false) => VirtioNetHdr::GSO_TCPV4,
        (true, false) => VirtioNetHdr::GSO_TCPV6,
    };
    let hdr = VirtioNetHdr {
        flags: VirtioNetHdr::F_NEEDS_CSUM,
        gso_type,
        hdr_len: (l4 + l4_hlen) as u16,
        gso_size,
        csum_start: l4 as u16,
        csum_offset: off as u16,
        num_buffers: 0,
    };
    (f, hdr)
}

fn bench_segment(c: &mut Criterion) {
    let mut g = c.benchmark_group("offload");
    // Largest frames: IP packet of 65535 bytes (v4), payload length 65535
    // (v6).
    let cases = [
        ("tso_v4_64k_mss1448", false, false, 65535 - 20 - 32, 1448),
        ("tso_v6_64k_mss1428", true, false, 65535 - 32, 1428),
        ("uso_v4_64k_1472", false, true, 65535 - 20 - 8, 1472),
    ];
    let mut buf = vec![0u8; 65535 + 14];
    for (name, v6, udp, n, gso) in cases {
        let (f, hdr) = gso_frame(v6, udp, n, gso);
        let segs = Segmenter::new(&f, &hdr, 1500).map(|s| s.n_segments());
        assert!(matches!(segs, Ok(n) if n > 40), "{name}: {segs:?}");
        g.throughput(Throughput::Bytes(f.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let Ok(mut seg) = Segmenter::new(black_box(&f), &hdr, 1500) else {
                    return;
                };
                while let Ok(Some(len)) = seg.next_into(&mut buf) {
                    black_box(&buf[..len]);
                }
            })
        });
    }

    let (mut f, hdr) = gso_frame(false, false, 65535 - 20 - 32, 1448);
    g.throughput(Throughput::Bytes(
        (f.len() - usize::from(hdr.csum_start)) as u64,
    ));
    g.bench_function("complete_checksum_64k", |b| {
        b.iter(|| complete_checksum(black_box(&mut f), black_box(&hdr)))
    });
    g.finish();
}

criterion_group!(benches, bench_segment);
criterion_main!(benches);
