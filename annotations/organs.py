"""SPIDER's class names per organ, byte for byte as the data spells them.

Typos and typography are kept on purpose ("Mercel cell carcinoma", "Kaposi’s sarcoma" with
U+2019, thorax "Vessel"): the published models and metadata use these exact strings.
"""

SPIDER_CLASSES: dict[str, tuple[str, ...]] = {
    "skin": (
        "Actinic keratosis", "Apocrine glands", "Basal cell carcinoma", "Carcinoma in situ",
        "Collagen", "Epidermis", "Fat", "Follicle", "Inflammation", "Invasive melanoma",
        "Kaposi\u2019s sarcoma", "Keratin", "Melanoma in situ", "Mercel cell carcinoma",
        "Muscle", "Necrosis", "Nerves", "Nevus", "Sebaceous gland", "Seborrheic keratosis",
        "Solar elastosis", "Squamous cell carcinoma", "Vessels", "Wart",
    ),
    "colorectal": (
        "Adenocarcinoma high grade", "Adenocarcinoma low grade", "Adenoma high grade",
        "Adenoma low grade", "Fat", "Hyperplastic polyp", "Inflammation", "Mucus", "Muscle",
        "Necrosis", "Sessile serrated lesion", "Stroma healthy", "Vessels",
    ),
    "thorax": (
        "Alveoli", "Bronchial cartilage", "Bronchial glands", "Chronic inflammation + fibrosis",
        "Detritus", "Fibrosis", "Hemorrhage", "Lymph node", "Pigment", "Pleura",
        "Tumor non-small cell", "Tumor small cell", "Tumor soft", "Vessel",
    ),
    "breast": (
        "Adenosis", "Benign phyllodes tumor", "Ductal carcinoma in situ (high-grade)",
        "Ductal carcinoma in situ (low-grade)", "Fat", "Fibroadenoma", "Fibrocystic changes",
        "Fibrosis", "Invasive non-special type carcinoma", "Lipogranuloma",
        "Lobular invasive carcinoma", "Malignant phyllodes tumor", "Necrosis", "Normal ducts",
        "Normal lobules", "Sclerosing adenosis", "Typical ductal hyperplasia", "Vessels",
    ),
}

SPIDER_LICENCE = "CC BY-NC 4.0"
SPIDER_CITATION = (
    "Nechaev, Pchelnikov, Ivanova (2025). SPIDER: A Comprehensive Multi-Organ Supervised "
    "Pathology Dataset and Baseline Models. arXiv:2503.02876"
)


def organ_classes(organ: str) -> tuple[str, ...]:
    """The canonical class list of a SPIDER organ; raises naming the organs we know."""
    try:
        return SPIDER_CLASSES[organ.lower()]
    except KeyError:
        known = ", ".join(sorted(SPIDER_CLASSES))
        raise ValueError(f"unknown organ {organ!r}; known organs: {known}") from None
