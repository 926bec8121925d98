"""Render the Multigenerational Manager's Handbook lead magnet from Markdown to PDF."""

from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
# A fixed date keeps rebuilds byte-identical, so the PDF only changes when the text does.
CREATION_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
ACCENT, INK, MUTED = (31, 78, 95), (40, 40, 40), (120, 120, 120)
# Longest prefix first, otherwise "### " would be read as a title.
PREFIXES = (("### ", "item"), ("## ", "section"), ("# ", "title"))
# Core fonts only cover latin-1; these are the typographic characters the handbook uses.
LATIN1_FALLBACKS = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "..."})

Block = tuple[str, str]


def parse_handbook(markdown: str) -> list[Block]:
    """Split the handbook into (kind, text) blocks; a section right after the title is its subtitle."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        line = line.strip()
        kind = next((k for prefix, k in PREFIXES if line.startswith(prefix)), None)
        if (kind or not line) and paragraph:
            blocks.append(("para", " ".join(paragraph)))
            paragraph.clear()
        if kind == "section" and blocks and blocks[-1][0] == "title":
            kind = "subtitle"
        if kind:
            blocks.append((kind, line.split(" ", 1)[1].strip()))
        elif line:
            paragraph.append(line)
    return blocks


class HandbookPDF(FPDF):
    """A4 document with the handbook's fonts, page-numbered footer and latin-1 fallback."""

    def __init__(self) -> None:
        super().__init__(format="A4")
        self.unicode_fonts = all((FONT_DIR / name).is_file() for name in FONT_FILES.values())
        for style, name in FONT_FILES.items() if self.unicode_fonts else ():
            self.add_font("dejavu", style, FONT_DIR / name)
        self.body_family = "dejavu" if self.unicode_fonts else "helvetica"
        self.set_margins(22, 20, 22)
        self.set_auto_page_break(True, margin=22)

    def clean(self, text: str) -> str:
        if self.unicode_fonts:
            return text
        return text.translate(LATIN1_FALLBACKS).encode("latin-1", "replace").decode("latin-1")

    def write_block(self, text: str, size: float, style: str = "", color: tuple[int, int, int] = INK,
                    line: float = 5.6, after: float = 2.5) -> None:
        self.set_font(self.body_family, style, size)
        self.set_text_color(*color)
        self.multi_cell(0, line, self.clean(text), align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(after)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(self.body_family, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 6, f"Page {self.page_no()} of {{nb}}", align="C")


def build_handbook(source: Path, target: Path) -> None:
    """Render the handbook Markdown at source into a PDF at target."""
    blocks = parse_handbook(source.read_text(encoding="utf-8"))
    title = next(text for kind, text in blocks if kind == "title")
    subtitle = next((text for kind, text in blocks if kind == "subtitle"), "")
    pdf = HandbookPDF()
    pdf.set_title(pdf.clean(f"{title} — {subtitle}" if subtitle else title))
    pdf.set_creation_date(CREATION_DATE)
    pdf.add_page()
    # The cover band doubles as the title block so the short guide starts on page one.
    pdf.set_fill_color(*ACCENT)
    pdf.rect(0, 0, pdf.w, 78, style="F")
    pdf.set_y(22)
    pdf.write_block("FREE GUIDE FOR MANAGERS", 9, "B", (180, 210, 220), after=3)
    pdf.write_block(title, 24, "B", (255, 255, 255), line=11, after=2)
    pdf.write_block(subtitle, 13, "", (225, 238, 242), line=7)
    pdf.set_y(92)
    for kind, text in blocks:
        if kind in ("item", "section"):
            # Keep a heading with the start of its paragraph instead of stranding it at a page foot.
            if pdf.will_page_break(28):
                pdf.add_page()
            pdf.ln(4 if kind == "item" else 8)
            pdf.write_block(text, 12.5 if kind == "item" else 15, "B", ACCENT, line=7, after=1)
        elif kind == "para":
            pdf.write_block(text, 10.5)
    target.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(target))


def main() -> None:
    here = Path(__file__).resolve().parent
    build_handbook(here / "handbook.md", here / "multigenerational-managers-handbook.pdf")


if __name__ == "__main__":
    main()
