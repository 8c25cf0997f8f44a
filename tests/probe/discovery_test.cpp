// Discovery against the simulator (one board per probe kind) and select_probe's rules.
#include "probe/discovery.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "sim_fixture.hpp"

namespace probefarm::probe::test {
namespace {

using DiscoveryTest = SimTest;

TEST_F(DiscoveryTest, FindsEveryProbeKindWithItsSerial) {
  ProbeList list = list_probes(*usb_);
  EXPECT_TRUE(list.warnings.empty()) << list.warnings.front();
  ASSERT_EQ(list.probes.size(), kBoards.size());
  for (auto kind : {ProbeKind::cmsis_dap_v1, ProbeKind::cmsis_dap_v2, ProbeKind::stlink_v2,
                    ProbeKind::stlink_v2_1, ProbeKind::stlink_v3}) {
    const std::string name(probe_kind_name(kind));
    const ProbeInfo* p = find(list, serials_[name]);
    ASSERT_NE(p, nullptr) << name << " " << serials_[name];
    EXPECT_EQ(p->kind, kind) << name;
    EXPECT_FALSE(p->path.empty());
    EXPECT_TRUE(p->note.empty()) << p->note;
    EXPECT_TRUE(p->firmware_version.empty());
    EXPECT_FALSE(p->vendor.empty()) << name;
    EXPECT_FALSE(p->product.empty()) << name;
  }
}

TEST_F(DiscoveryTest, StLinkV2BinarySerialIsShownAsHex) {
  ProbeList list = list_probes(*usb_);
  auto it = std::find_if(list.probes.begin(), list.probes.end(),
                         [](const ProbeInfo& p) { return p.kind == ProbeKind::stlink_v2; });
  ASSERT_NE(it, list.probes.end());
  // The simulator's default V2 serial: the 12 bytes "PF01F103C8__" (probe_factory.cpp).
  EXPECT_EQ(it->serial, "504630314631303343385F5F");
  EXPECT_EQ(it->serial, serials_["stlink-v2"]);
  EXPECT_EQ(it->vid, 0x0483);
  EXPECT_EQ(it->pid, 0x3748);
  EXPECT_EQ(it->interface_number, 0);
}

TEST_F(DiscoveryTest, CmsisDapInterfacesAndIds) {
  ProbeList list = list_probes(*usb_);
  const ProbeInfo* v1 = find(list, serials_["cmsis-dap-v1"]);
  const ProbeInfo* v2 = find(list, serials_["cmsis-dap-v2"]);
  ASSERT_NE(v1, nullptr);
  ASSERT_NE(v2, nullptr);
  EXPECT_NE(v1->product.find("CMSIS-DAP"), std::string::npos) << v1->product;
  EXPECT_EQ(v1->vid, 0x0D28);
  EXPECT_EQ(v2->vid, 0x0D28);
  // The claimed interface must be the one that carries the protocol.
  auto dev = usb_->open(v2->path);
  bool found = false;
  for (const auto& itf : dev->configuration().interfaces) {
    if (itf.number != v2->interface_number) continue;
    found = true;
    EXPECT_EQ(itf.interface_class, 0xFF);
    EXPECT_NE(itf.name.find("CMSIS-DAP"), std::string::npos) << itf.name;
  }
  EXPECT_TRUE(found);
  auto dev1 = usb_->open(v1->path);
  for (const auto& itf : dev1->configuration().interfaces) {
    if (itf.number == v1->interface_number) {
      EXPECT_EQ(itf.interface_class, 0x03);
    }
  }
}

TEST_F(DiscoveryTest, SelectsFromTheRealListByPrefix) {
  ProbeList list = list_probes(*usb_);
  EXPECT_EQ(select_probe(list.probes, serials_["cmsis-dap-v2"]).kind, ProbeKind::cmsis_dap_v2);
  // PFSIM02F303VC and PFSIM03F407VG: "PFSIM03" is unique, "PFSIM0" is not.
  EXPECT_EQ(select_probe(list.probes, "PFSIM03").kind, ProbeKind::cmsis_dap_v2);
  try {
    select_probe(list.probes, "PFSIM0");
    FAIL() << "ambiguous prefix accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_not_found);
    EXPECT_NE(e.message().find("matches 2 probes"), std::string::npos) << e.message();
  }
}

std::vector<ProbeInfo> probes_with(std::vector<std::string> serials) {
  std::vector<ProbeInfo> out;
  for (auto& s : serials) {
    ProbeInfo p;
    p.serial = s;
    out.push_back(p);
  }
  return out;
}

TEST(SelectProbe, ExactMatchWinsOverPrefix) {
  auto probes = probes_with({"ABC", "ABCD"});
  EXPECT_EQ(select_probe(probes, "ABC").serial, "ABC");
  EXPECT_EQ(select_probe(probes, "ABCD").serial, "ABCD");
}

TEST(SelectProbe, UniquePrefix) {
  auto probes = probes_with({"0669FF55", "0670AA11"});
  EXPECT_EQ(select_probe(probes, "067").serial, "0670AA11");
}

TEST(SelectProbe, AmbiguousPrefixNamesTheMatches) {
  auto probes = probes_with({"0669FF55", "0670AA11", "1234"});
  try {
    select_probe(probes, "06");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_not_found);
    EXPECT_EQ(std::string(e.message()), "serial prefix '06' matches 2 probes: 0669FF55, 0670AA11");
    EXPECT_EQ(e.hint(), "give more of the serial");
  }
}

TEST(SelectProbe, NoMatchListsTheAttachedSerials) {
  auto probes = probes_with({"AAA", "BBB"});
  try {
    select_probe(probes, "CCC");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_not_found);
    EXPECT_EQ(std::string(e.message()), "no probe with serial 'CCC'");
    EXPECT_NE(e.hint().find("AAA, BBB"), std::string::npos) << e.hint();
  }
}

TEST(SelectProbe, EmptySelectorPicksTheOnlyProbe) {
  auto probes = probes_with({"ONLY"});
  EXPECT_EQ(select_probe(probes, "").serial, "ONLY");
}

TEST(SelectProbe, EmptySelectorWithSeveralIsAUsageError) {
  auto probes = probes_with({"AAA", "BBB"});
  try {
    select_probe(probes, "");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::usage);
    EXPECT_EQ(std::string(e.message()), "2 probes attached: AAA, BBB");
    EXPECT_EQ(e.hint(), "choose one with --probe SERIAL");
  }
}

TEST(SelectProbe, NoProbeAttached) {
  std::vector<ProbeInfo> none;
  try {
    select_probe(none, "");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::probe_not_found);
  }
}

}  // namespace
}  // namespace probefarm::probe::test
