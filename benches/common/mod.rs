//! What the pipeline benches share: a 64-byte UDP frame and a flow table
//! with extra flows spread over several masks.

use flowtable::classifier::CounterPolicy;
use flowtable::syntax::parse_flow;
use rvs::datapath::pipeline::{new_entry, Pipeline};

/// An Ethernet/IPv4/UDP frame (64 bytes), 5001 → 5002.
pub fn udp_frame(src: [u8; 6], dst: [u8; 6], src_ip: [u8; 4], dst_ip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src_ip);
    f[30..34].copy_from_slice(&dst_ip);
    f[34..36].copy_from_slice(&5001u16.to_be_bytes());
    f[36..38].copy_from_slice(&5002u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f
}

/// Table 0 with `priority=0,actions=NORMAL` and `extra` UDP drop flows
/// over `masks` masks: flow i matches a /(32 - i % masks) source prefix in
/// 172.16.0.0/12 (never the benchmark packets); random-ish priorities
/// defeat the classifier's early exit.
pub fn pipeline(extra: usize, masks: usize) -> Pipeline {
    let mut p = Pipeline::new(2);
    let mut add = |text: &str| {
        let f = parse_flow(text, &|_| None).expect("flow");
        p.table_mut(0)
            .insert(new_entry(f, 0, 2), 0, CounterPolicy::Reset);
    };
    add("priority=0,actions=NORMAL");
    for i in 0..extra {
        let k = i % masks;
        let ip = (172u32 << 24 | (16 + (i as u32 >> 16) % 16) << 16 | (i as u32 & 0xffff))
            & !((1u32 << k) - 1);
        add(&format!(
            "priority={},udp,nw_src={}/{},tp_dst={},actions=drop",
            100 + (i * 7919) % 1000,
            std::net::Ipv4Addr::from(ip),
            32 - k,
            1000 + i % 1000
        ));
    }
    p
}
