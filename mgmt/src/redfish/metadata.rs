//! The schemas the view uses, in one table: each resource's versioned `@odata.type`, the
//! `$metadata` document that references them (DSP0266 "Service metadata"), and the OData
//! service document at `/redfish/v1/odata`.

use serde_json::{json, Value};

/// DMTF-published schemas (DSP8010).
const DMTF: &str = "http://redfish.dmtf.org/schemas/v1/";
/// SNIA Swordfish schemas, as DMTF publishes them.
const SWORDFISH: &str = "http://redfish.dmtf.org/schemas/swordfish/v1/";

/// A schema file (name, where it is published) and the namespaces of it the view uses: the
/// unversioned one and, for a versioned schema, the version its resources claim first.
type Schema = (&'static str, &'static str, &'static [&'static str]);

const SCHEMAS: &[Schema] = &[
    ("ServiceRoot", DMTF, &["v1_16_0"]),
    ("SessionService", DMTF, &["v1_1_0"]),
    ("SessionCollection", DMTF, &[]),
    ("StorageCollection", DMTF, &[]),
    ("Storage", DMTF, &["v1_15_0"]),
    ("StorageControllerCollection", DMTF, &[]),
    ("StorageController", DMTF, &["v1_7_0"]),
    ("VolumeCollection", SWORDFISH, &[]),
    ("Volume", SWORDFISH, &["v1_9_0"]),
    ("ChassisCollection", DMTF, &[]),
    ("Chassis", DMTF, &["v1_23_0"]),
    ("DriveCollection", DMTF, &[]),
    ("Drive", DMTF, &["v1_17_0"]),
    ("FabricCollection", DMTF, &[]),
    ("Fabric", DMTF, &["v1_3_0"]),
    ("EndpointCollection", DMTF, &[]),
    ("Endpoint", DMTF, &["v1_8_0"]),
    ("ConnectionCollection", DMTF, &[]),
    ("Connection", DMTF, &["v1_3_0"]),
    ("Resource", DMTF, &["v1_0_0", "v1_1_0"]),
    ("IPAddresses", DMTF, &["v1_0_0"]),
    ("Protocol", DMTF, &[]),
    ("Message", DMTF, &["v1_1_2"]),
];

/// `#Name.vX_Y_Z.Name` for a versioned resource, `#Name.Name` for a collection.
pub(crate) fn odata_type(name: &str) -> String {
    match SCHEMAS
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|(_, _, versions)| versions.first())
    {
        Some(v) => format!("#{name}.{v}.{name}"),
        None => format!("#{name}.{name}"),
    }
}

/// `/redfish/v1/$metadata`: every schema the view uses, and the service's entity container.
pub(crate) fn document() -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (name, base, versions) in SCHEMAS {
        xml.push_str(&format!(
            "  <edmx:Reference Uri=\"{base}{name}_v1.xml\">\n    <edmx:Include Namespace=\"{name}\"/>\n"
        ));
        for v in *versions {
            xml.push_str(&format!("    <edmx:Include Namespace=\"{name}.{v}\"/>\n"));
        }
        xml.push_str("  </edmx:Reference>\n");
    }
    let root = odata_type("ServiceRoot");
    let container = root
        .trim_start_matches('#')
        .replace(".ServiceRoot", ".ServiceContainer");
    xml.push_str(&format!(
        "  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" \
         Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" Extends=\"{container}\"/>\n\
         \x20   </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n"
    ));
    xml
}

/// `/redfish/v1/odata`: the service root's top-level resources.
pub(crate) fn service_document() -> Value {
    let singleton = |name: &str, url: &str| json!({"name": name, "kind": "Singleton", "url": url});
    json!({
        "@odata.context": "/redfish/v1/$metadata",
        "value": [
            singleton("Service", "/redfish/v1/"),
            singleton("Storage", "/redfish/v1/Storage"),
            singleton("Fabrics", "/redfish/v1/Fabrics"),
            singleton("Chassis", "/redfish/v1/Chassis"),
            singleton("SessionService", "/redfish/v1/SessionService"),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_metadata_agree() {
        assert_eq!(odata_type("Storage"), "#Storage.v1_15_0.Storage");
        assert_eq!(
            odata_type("VolumeCollection"),
            "#VolumeCollection.VolumeCollection"
        );
        let xml = document();
        assert!(xml.contains(
            "<edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/swordfish/v1/Volume_v1.xml\">"
        ));
        assert!(xml.contains("<edmx:Include Namespace=\"Storage.v1_15_0\"/>"));
        assert!(xml.contains("Extends=\"ServiceRoot.v1_16_0.ServiceContainer\""));
        assert_eq!(xml.matches("<edmx:Reference ").count(), SCHEMAS.len());
        assert_eq!(xml.matches("</edmx:Reference>").count(), SCHEMAS.len());
    }
}
