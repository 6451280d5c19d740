//! dnstap.proto (the version with `Policy` and `http_protocol`) as prost structs, written by
//! hand with `#[derive(prost::Message)]` so no protoc / prost-build is needed at build time.
//! The sink encodes with [`super::encode`] (no allocation per event); these structs are the
//! schema's reference and what readers (the tests, tools) decode with.

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    Message = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    Inet = 1,
    Inet6 = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    Udp = 1,
    Tcp = 2,
    Dot = 3,
    Doh = 4,
    DnsCryptUdp = 5,
    DnsCryptTcp = 6,
    Doq = 7,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HttpProtocol {
    Http1 = 1,
    Http2 = 2,
    Http3 = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyMatch {
    Qname = 1,
    ClientIp = 2,
    ResponseIp = 3,
    NsName = 4,
    NsIp = 5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyAction {
    Nxdomain = 1,
    Nodata = 2,
    Pass = 3,
    Drop = 4,
    Truncate = 5,
    LocalData = 6,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Policy {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub rule: Option<Vec<u8>>,
    #[prost(enumeration = "PolicyAction", optional, tag = "3")]
    pub action: Option<i32>,
    #[prost(enumeration = "PolicyMatch", optional, tag = "4")]
    pub r#match: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub value: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    AuthQuery = 1,
    AuthResponse = 2,
    ResolverQuery = 3,
    ResolverResponse = 4,
    ClientQuery = 5,
    ClientResponse = 6,
    ForwarderQuery = 7,
    ForwarderResponse = 8,
    StubQuery = 9,
    StubResponse = 10,
    ToolQuery = 11,
    ToolResponse = 12,
    UpdateQuery = 13,
    UpdateResponse = 14,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    #[prost(bytes = "bytes", optional, tag = "10")]
    pub query_message: Option<Bytes>,
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    #[prost(bytes = "bytes", optional, tag = "14")]
    pub response_message: Option<Bytes>,
    #[prost(message, optional, tag = "15")]
    pub policy: Option<Policy>,
    #[prost(enumeration = "HttpProtocol", optional, tag = "16")]
    pub http_protocol: Option<i32>,
}
