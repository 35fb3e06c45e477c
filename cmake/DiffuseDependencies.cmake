# Finds what diffuse needs; used by our own build and by diffuseConfig.cmake for users.
# Every dependency is a Debian package (see scripts/setup.sh); nothing is downloaded.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.3 NO_MODULE)
find_dependency(xtensor)
find_dependency(OpenMP)
find_dependency(nlohmann_json 3)
find_dependency(ZLIB)
find_dependency(PkgConfig)

# Debian builds stb's implementations into libstb.so and describes it with pkg-config.
if(NOT TARGET PkgConfig::DIFFUSE_STB)
  pkg_check_modules(DIFFUSE_STB REQUIRED IMPORTED_TARGET stb)
endif()
