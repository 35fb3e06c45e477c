/// @file
/// Eigen's packet functions (one SIMD register of values: 16 floats or 8 doubles with AVX-512,
/// the scalar itself without SIMD), called directly: Eigen's array expressions around them cost
/// more to compile than the vectorised code they produce. The kernels that need a vectorised exp
/// (SiLU, softmax) work on blocks of kPacketBlock values at fixed offsets, so every value goes
/// through the same packet code and a result does not depend on where the value sits in memory
/// (Eigen on an unaligned Map would do a head with the scalar exp, which rounds differently).
#pragma once
// See gemm.hpp: GCC 12 false (maybe-)uninitialized warnings in AVX-512 intrinsics inlined from
// Eigen (here from the min/max inside its vectorised exp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>

namespace diffuse::kernels::detail {

/// The widest SIMD register of T values Eigen uses here (T itself without SIMD).
template <class T>
using Packet = typename Eigen::internal::packet_traits<T>::type;
/// The values in a Packet<T>.
template <class T>
inline constexpr int kPacketSize = Eigen::internal::packet_traits<T>::size;
/// The block the exp kernels work in: a whole number of packets for float and double.
inline constexpr int kPacketBlock = 16;
static_assert(kPacketBlock % kPacketSize<float> == 0 && kPacketBlock % kPacketSize<double> == 0,
              "a block is a whole number of packets");

/// out[j] = exp(in[j]) for j < kPacketBlock (out may be in).
template <class T>
void exp_block(const T* in, T* out) {
  for (int j = 0; j < kPacketBlock; j += kPacketSize<T>)
    Eigen::internal::pstoreu(out + j, Eigen::internal::pexp(Eigen::internal::ploadu<Packet<T>>(in + j)));
}

}  // namespace diffuse::kernels::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
