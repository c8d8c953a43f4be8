// SPDX-License-Identifier: Apache-2.0
// Must NOT compile: an application type stored as an attribute without a
// stable name (TROUPE_ATTRIBUTE_TYPE). ctest compiles it with -fsyntax-only and
// expects the static_assert's message (managers.unnamed_attribute_type_does_not_compile).
#include <troupe/managers/attribute_codec.hpp>

#include <string>

struct unnamed {
    std::string text;

    template <typename Archive>
    void serialize(Archive& ar, unsigned) {
        ar & text;
    }
};

int main() {
    return static_cast<int>(troupe::managers::encode_attribute(unnamed{"x"}).bytes.size());
}
