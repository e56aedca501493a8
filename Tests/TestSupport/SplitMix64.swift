/// A seeded SplitMix64 for the test suites' generated cases: the same sequence on every
/// platform and Swift version (the standard library's `random(in:using:)` mapping is not
/// promised to be stable), so a failing case can be replayed from its seed.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform enough in `0..<bound` for test sizes (modulo bias below 2^-40).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
