"""Draw Embedding Explorer's icons into ``assets/``.

The app icon is a rounded square in deep blue holding three clusters of coloured dots (an
embedding map seen from far away). One geometry, defined here in a 512-unit square, is written
twice: as ``assets/icon.svg`` (the scalable master, also used as the Linux ``scalable`` icon)
and rasterised with Pillow at 4x supersampling into ``assets/icons/app/icon_<N>.png`` for
N in 16, 24, 32, 48, 64, 128, 256, 512, plus ``assets/icon.ico`` (Windows) and
``assets/icon.icns`` (macOS). Small sizes use fewer, bigger dots so they stay legible.

The toolbar icons are hand-written monochrome SVGs (24x24, 2-unit strokes, round caps), written
in two colours: ``assets/icons/toolbar/<name>.svg`` for light themes and
``assets/icons/toolbar/dark/<name>.svg`` for dark ones.

The Qt stylesheets ``assets/style_light.qss`` and ``assets/style_dark.qss`` are one template
filled with two palettes (colours and spacing only; meant for the Fusion style).

Run:  python scripts/make_icons.py     (deterministic: same bytes every time for the SVGs)
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

APP_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)

# ---------------------------------------------------------------- app icon geometry (512 units)
UNITS = 512
MARGIN = 24              # transparent border around the rounded square
RADIUS = 108             # corner radius of the rounded square
BG_TOP = (38, 52, 86)    # #263456
BG_BOTTOM = (20, 28, 48)  # #141c30
RIM = (255, 255, 255, 38)  # faint light rim along the square's edge

# (centre x, centre y, spread, colour) per cluster; colours are a calm qualitative palette
CLUSTERS = (
    (162, 178, 40, (94, 162, 245)),    # blue   #5ea2f5
    (350, 172, 36, (245, 166, 82)),    # orange #f5a652
    (250, 352, 40, (96, 200, 140)),    # green  #60c88c
)
STRAY = ((398, 352, (232, 110, 150)),)  # one pink outlier: the point you go looking for
# 24-32 px: three dots per cluster in a fixed triangle (offsets in 512 units)
MID_TRIANGLE = ((-44, 26), (44, 26), (0, -50))


def _dots(detail: str) -> list[tuple[float, float, float, tuple[int, int, int]]]:
    """(x, y, radius, rgb) in 512 units. ``detail``: 'full' (>= 48 px), 'mid' (24-32), 'tiny' (16)."""
    if detail == "tiny":
        return [(x, y, 66, c) for x, y, _, c in CLUSTERS]
    if detail == "mid":
        return [(cx + dx, cy + dy, 32, c) for cx, cy, _, c in CLUSTERS for dx, dy in MID_TRIANGLE]
    rng = random.Random(20240611)
    per_cluster, r_dot = 12, 16
    out: list[tuple[float, float, float, tuple[int, int, int]]] = []
    for cx, cy, spread, colour in CLUSTERS:
        n = 0
        while n < per_cluster:
            x, y = rng.gauss(cx, spread), rng.gauss(cy, spread)
            # keep every dot clear of the others so they read as dots, not a blob
            if all((x - px) ** 2 + (y - py) ** 2 > (2.4 * r_dot) ** 2 for px, py, _, _ in out):
                out.append((x, y, r_dot, colour))
                n += 1
    out += [(x, y, r_dot * 1.3, c) for x, y, c in STRAY]
    return out


def app_icon_svg() -> str:
    w = UNITS - 2 * MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{UNITS}" height="{UNITS}" '
        f'viewBox="0 0 {UNITS} {UNITS}">',
        "<title>Embedding Explorer</title>",
        '<defs><linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0" stop-color="#{"%02x%02x%02x" % BG_TOP}"/>'
        f'<stop offset="1" stop-color="#{"%02x%02x%02x" % BG_BOTTOM}"/>'
        "</linearGradient></defs>",
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{w}" height="{w}" rx="{RADIUS}" fill="url(#bg)"/>',
        f'<rect x="{MARGIN + 3}" y="{MARGIN + 3}" width="{w - 6}" height="{w - 6}" rx="{RADIUS - 3}" '
        f'fill="none" stroke="#ffffff" stroke-opacity="{RIM[3] / 255:.2f}" stroke-width="6"/>',
    ]
    for x, y, r, c in _dots("full"):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#{"%02x%02x%02x" % c}" '
                     'stroke="#ffffff" stroke-opacity="0.35" stroke-width="3"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_app_icon(size: int, supersample: int = 4) -> Image.Image:
    """Rasterise the app icon at ``size`` px (RGBA) with Pillow."""
    detail = "tiny" if size <= 16 else "mid" if size <= 32 else "full"
    S = size * supersample
    k = S / UNITS
    # tiny icons use almost the whole square: a 1 px margin is all 16 px can spare
    margin = MARGIN if size >= 48 else 8
    radius = RADIUS if size >= 48 else 96
    grad = Image.new("RGBA", (1, S))
    for yy in range(S):
        t = yy / max(S - 1, 1)
        grad.putpixel((0, yy), tuple(round(a + (b - a) * t) for a, b in zip(BG_TOP, BG_BOTTOM)) + (255,))
    grad = grad.resize((S, S))
    mask = Image.new("L", (S, S), 0)
    box = (margin * k, margin * k, (UNITS - margin) * k - 1, (UNITS - margin) * k - 1)
    ImageDraw.Draw(mask).rounded_rectangle(box, radius=radius * k, fill=255)
    img = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    img.paste(grad, (0, 0), mask)
    over = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    if size >= 48:
        inset = 3 * k
        d.rounded_rectangle((box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset),
                            radius=(radius - 3) * k, outline=RIM, width=max(1, round(6 * k)))
    outline = max(1, round(3 * k)) if size >= 48 else 0
    for x, y, r, c in _dots(detail):
        d.ellipse(((x - r) * k, (y - r) * k, (x + r) * k, (y + r) * k), fill=c + (255,),
                  outline=(255, 255, 255, 90) if outline else None, width=outline)
    img = Image.alpha_composite(img, over)
    return img.resize((size, size), Image.LANCZOS)


# ---------------------------------------------------------------- toolbar icons (24x24 SVG)
# Each value is the inner SVG markup; strokes and fills use the placeholder colour "C".
TOOLBAR: dict[str, str] = {
    # folder with an open flap
    "open": '<path d="M3 7V5.5A1.5 1.5 0 0 1 4.5 4h4l2 2.5h8A1.5 1.5 0 0 1 20 8v1"/>'
            '<path d="M3 7v11.5h15.5L21.5 10H6.5L3 18.5"/>',
    # a block with an arrow out to a row of vector cells: data -> embedding
    "embed": '<rect x="2.5" y="6" width="7" height="12" rx="1.5"/>'
             '<path d="M9.5 12h4"/><path d="M11.5 9.8 13.8 12l-2.3 2.2"/>'
             '<rect x="15" y="4" width="6.5" height="16" rx="1.2"/>'
             '<path d="M15 8h6.5M15 12h6.5M15 16h6.5"/>',
    # scatter map: axes and three dots
    "map": '<path d="M3.5 3.5v17h17"/><g fill="C" stroke="none">'
           '<circle cx="9" cy="14.5" r="1.9"/><circle cx="13" cy="8.5" r="1.9"/>'
           '<circle cx="17.5" cy="13" r="1.9"/><circle cx="10.5" cy="9.5" r="1.2"/>'
           '<circle cx="16.5" cy="6.5" r="1.2"/></g>',
    # an eigenvalue spectrum whose bars fall off (collapse diagnostics)
    "diagnose": '<path d="M3 20.5h18"/><path d="M6 17V4M10.5 17V9M15 17v-4.5M19.5 17v-1.5"/>',
    # two overlapping point clouds with a double arrow
    "compare": '<circle cx="8.5" cy="10" r="5.5"/><circle cx="15.5" cy="10" r="5.5"/>'
               '<path d="M3.5 20h17M6 18l-2.5 2L6 22M18 18l2.5 2L18 22" stroke-width="1.6"/>',
    # a dial / slider: tune the model
    "finetune": '<path d="M4 6h9M17 6h3M4 12h3M11 12h9M4 18h11M19 18h1"/>'
                '<circle cx="15" cy="6" r="2"/><circle cx="9" cy="12" r="2"/><circle cx="17" cy="18" r="2"/>',
    # tray with an arrow going out
    "export": '<path d="M12 15V3.5M7.5 8 12 3.5 16.5 8"/>'
              '<path d="M4 13v6.5A1.5 1.5 0 0 0 5.5 21h13a1.5 1.5 0 0 0 1.5-1.5V13"/>',
    # lasso: a loose loop with a tail
    "lasso": '<path d="M6.3 16.2C3.5 14.8 2.5 12.6 3.2 10.3 4.3 6.5 9.5 4 14.5 4.6c4.6.6 7.3 3.4 6.3 6.6'
             '-1 3.3-6 5.4-11 5.2"/><circle cx="7.5" cy="17" r="1.9"/><path d="M7 19c.3 1.3-.3 2.3-1.7 2.6"/>',
    # rectangle (box) selection: a dashed frame
    "box": '<rect x="3.5" y="4.5" width="17" height="15" rx="1" stroke-dasharray="3 2.4"/>',
    # pan: four-way arrows
    "pan": '<path d="M12 2.5v19M2.5 12h19"/><path d="M9.5 5 12 2.5 14.5 5M9.5 19l2.5 2.5 2.5-2.5'
           'M5 9.5 2.5 12 5 14.5M19 9.5l2.5 2.5-2.5 2.5"/>',
    # reset view / fit all points: frame corners around a square
    "reset_view": '<path d="M3 8V3h5M16 3h5v5M21 16v5h-5M8 21H3v-5"/>'
                  '<rect x="8" y="8" width="8" height="8" rx="1"/>',
    # cancel: circle with a cross
    "cancel": '<circle cx="12" cy="12" r="9"/><path d="M8.5 8.5l7 7M15.5 8.5l-7 7"/>',
}
TOOLBAR_COLOURS = {"": "#3c4656", "dark/": "#d5dbe5"}

# small glyphs the stylesheets use (combo box and spin box arrows), muted text colour
UI_GLYPHS: dict[str, str] = {
    "chevron_down": '<path d="M6 9.5l6 6 6-6"/>',
    "chevron_up": '<path d="M6 14.5l6-6 6 6"/>',
}
UI_COLOURS = {"": "#5c6573", "dark/": "#9aa3b0"}


def toolbar_svg(inner: str, colour: str) -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24" '
            f'fill="none" stroke="{colour}" stroke-width="2" stroke-linecap="round" '
            f'stroke-linejoin="round">{inner.replace(chr(34) + "C" + chr(34), chr(34) + colour + chr(34))}'
            "</svg>\n")


# ---------------------------------------------------------------- Qt stylesheets
# One template, two palettes -> assets/style_light.qss, assets/style_dark.qss.
PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "WINDOW": "#f4f5f7", "SURFACE": "#ffffff", "CHROME": "#eceef1", "BUTTON": "#fbfbfc",
        "TEXT": "#1f2430", "TEXT_MUTED": "#5c6573", "TEXT_DISABLED": "#a0a6b0",
        "BORDER": "#d5d9df", "BORDER_STRONG": "#c1c7cf", "HOVER": "#e3e7ec", "PRESSED": "#d3d9e1",
        "ACCENT": "#2f6fd6", "ACCENT_SOFT": "#dbe7fa", "ALT_ROW": "#f7f8fa",
        "SCROLL": "#c3c9d1", "SCROLL_HOVER": "#a5adb8",
        "WARNING": "#a15c00", "ERROR": "#c0392b", "OK": "#2e7d4f",
        "PLOT_BG": "#ffffff", "PLOT_FG": "#3c4656", "UI": "icons/ui",
    },
    "dark": {
        "WINDOW": "#1f2126", "SURFACE": "#262930", "CHROME": "#2b2e35", "BUTTON": "#2f333b",
        "TEXT": "#dfe3ea", "TEXT_MUTED": "#9aa3b0", "TEXT_DISABLED": "#5d646f",
        "BORDER": "#383c45", "BORDER_STRONG": "#474c57", "HOVER": "#333741", "PRESSED": "#3c414c",
        "ACCENT": "#4c8ee8", "ACCENT_SOFT": "#2a3d5c", "ALT_ROW": "#2a2d34",
        "SCROLL": "#4a505b", "SCROLL_HOVER": "#5f6673",
        "WARNING": "#e0a64f", "ERROR": "#ef6b5e", "OK": "#5cc48a",
        "PLOT_BG": "#1a1c20", "PLOT_FG": "#c9d0da", "UI": "icons/ui/dark",
    },
}

STYLE_TEMPLATE = """\
/* Embedding Explorer - @THEME@ theme.
   Generated by scripts/make_icons.py; edit the template there, not this file.
   Apply with QApplication.setStyle("Fusion"), QDir.addSearchPath("assets", str(assets_dir()))
   (the arrows below are url(assets:...)), then app.setStyleSheet(text). Where QSS does not
   reach (pyqtgraph plots) use background @PLOT_BG@ and foreground @PLOT_FG@.
    Modest on purpose: colours and spacing; the only images are the chevrons of combo and spin
   boxes and the check mark; sliders, scroll arrows and size grips are Fusion's. */

QWidget {
    color: @TEXT@;
    background-color: @WINDOW@;
    selection-background-color: @ACCENT@;
    selection-color: #ffffff;
}
QWidget:disabled { color: @TEXT_DISABLED@; }

QMainWindow::separator { background: @BORDER@; width: 1px; height: 1px; }
QMainWindow::separator:hover { background: @ACCENT@; }

QToolTip {
    color: @TEXT@;
    background-color: @SURFACE@;
    border: 1px solid @BORDER@;
    padding: 4px 6px;
}

/* toolbars and menus */
QToolBar {
    background: @CHROME@;
    border: none;
    border-bottom: 1px solid @BORDER@;
    spacing: 2px;
    padding: 3px 4px;
}
QToolBar::separator { background: @BORDER@; width: 1px; margin: 4px 6px; }
QToolButton {
    background: transparent;
    border: 1px solid transparent;
    border-radius: 4px;
    padding: 4px;
}
QToolButton:hover { background: @HOVER@; border-color: @BORDER@; }
QToolButton:pressed { background: @PRESSED@; }
QToolButton:checked { background: @ACCENT_SOFT@; border-color: @ACCENT@; }

QMenuBar { background: @CHROME@; border-bottom: 1px solid @BORDER@; }
QMenuBar::item { background: transparent; padding: 4px 10px; }
QMenuBar::item:selected { background: @HOVER@; border-radius: 3px; }
QMenu { background: @SURFACE@; border: 1px solid @BORDER@; padding: 4px 0; }
QMenu::item { padding: 5px 24px 5px 24px; }
QMenu::item:selected { background: @ACCENT@; color: #ffffff; }
QMenu::separator { height: 1px; background: @BORDER@; margin: 4px 8px; }

/* docks, tabs, group boxes */
QDockWidget::title {
    background: @CHROME@;
    padding: 5px 8px;
    border-bottom: 1px solid @BORDER@;
}
QTabWidget::pane { border: 1px solid @BORDER@; top: -1px; background: @SURFACE@; }
QTabBar::tab {
    background: @CHROME@;
    border: 1px solid @BORDER@;
    border-bottom: none;
    padding: 5px 12px;
    margin-right: 2px;
    border-top-left-radius: 4px;
    border-top-right-radius: 4px;
}
QTabBar::tab:selected { background: @SURFACE@; color: @TEXT@; border-top: 2px solid @ACCENT@; }
QTabBar::tab:!selected { color: @TEXT_MUTED@; }
QTabBar::tab:hover:!selected { background: @HOVER@; }
QGroupBox {
    border: 1px solid @BORDER@;
    border-radius: 5px;
    margin-top: 12px;
    padding-top: 6px;
}
QGroupBox::title {
    subcontrol-origin: margin;
    left: 8px;
    padding: 0 4px;
    color: @TEXT_MUTED@;
}

/* inputs */
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QPlainTextEdit, QTextEdit {
    background: @SURFACE@;
    border: 1px solid @BORDER_STRONG@;
    border-radius: 4px;
    padding: 3px 6px;
}
QLineEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus,
QPlainTextEdit:focus, QTextEdit:focus { border-color: @ACCENT@; }
QComboBox::drop-down {
    subcontrol-origin: padding;
    subcontrol-position: center right;
    width: 18px;
    border: none;
}
QSpinBox::up-button, QDoubleSpinBox::up-button,
QSpinBox::down-button, QDoubleSpinBox::down-button {
    width: 16px;
    border: none;
    background: transparent;
}
QComboBox::down-arrow { image: url(assets:@UI@/chevron_down.svg); width: 10px; height: 10px; }
QSpinBox::up-arrow, QDoubleSpinBox::up-arrow {
    image: url(assets:@UI@/chevron_up.svg); width: 9px; height: 9px;
}
QSpinBox::down-arrow, QDoubleSpinBox::down-arrow {
    image: url(assets:@UI@/chevron_down.svg); width: 9px; height: 9px;
}
QSpinBox::up-button:hover, QDoubleSpinBox::up-button:hover,
QSpinBox::down-button:hover, QDoubleSpinBox::down-button:hover { background: @HOVER@; }
QComboBox QAbstractItemView {
    background: @SURFACE@;
    border: 1px solid @BORDER@;
    selection-background-color: @ACCENT@;
}

QCheckBox::indicator, QRadioButton::indicator, QGroupBox::indicator,
QAbstractItemView::indicator {
    width: 13px;
    height: 13px;
    background: @SURFACE@;
    border: 1px solid @BORDER_STRONG@;
    border-radius: 3px;
}
QRadioButton::indicator { border-radius: 7px; }
QCheckBox::indicator:hover, QRadioButton::indicator:hover { border-color: @ACCENT@; }
QCheckBox::indicator:checked, QGroupBox::indicator:checked, QAbstractItemView::indicator:checked {
    background: @ACCENT@;
    border-color: @ACCENT@;
    image: url(assets:icons/ui/check.svg);
}
QRadioButton::indicator:checked {
    border-color: @ACCENT@;
    background: qradialgradient(cx:0.5, cy:0.5, radius:0.5, fx:0.5, fy:0.5,
                                stop:0 @ACCENT@, stop:0.5 @ACCENT@, stop:0.6 @SURFACE@, stop:1 @SURFACE@);
}
QCheckBox::indicator:disabled, QRadioButton::indicator:disabled { background: @CHROME@; border-color: @BORDER@; }

QPushButton {
    background: @BUTTON@;
    border: 1px solid @BORDER_STRONG@;
    border-radius: 4px;
    padding: 5px 14px;
    min-height: 18px;
}
QPushButton:hover { background: @HOVER@; }
QPushButton:pressed { background: @PRESSED@; }
QPushButton:default { border-color: @ACCENT@; }
QPushButton:disabled { background: @CHROME@; border-color: @BORDER@; }

/* lists, trees, tables */
QAbstractItemView {
    background: @SURFACE@;
    alternate-background-color: @ALT_ROW@;
    border: 1px solid @BORDER@;
}
QAbstractItemView::item:hover { background: @HOVER@; }
QAbstractItemView::item:selected { background: @ACCENT@; color: #ffffff; }
QListView::item, QTreeView::item { padding: 2px 4px; }
QHeaderView::section {
    background: @CHROME@;
    color: @TEXT_MUTED@;
    border: none;
    border-right: 1px solid @BORDER@;
    border-bottom: 1px solid @BORDER@;
    padding: 4px 6px;
}
QTableView { gridline-color: @BORDER@; }

/* progress and status */
QProgressBar {
    background: @CHROME@;
    border: 1px solid @BORDER@;
    border-radius: 4px;
    text-align: center;
    min-height: 14px;
}
QProgressBar::chunk { background: @ACCENT@; border-radius: 3px; }
QStatusBar { background: @CHROME@; border-top: 1px solid @BORDER@; color: @TEXT_MUTED@; }
QStatusBar::item { border: none; }
QSplitter::handle { background: @BORDER@; }
QSplitter::handle:horizontal { width: 1px; }
QSplitter::handle:vertical { height: 1px; }

/* scroll bars: thin and quiet */
QScrollBar:vertical { background: transparent; width: 11px; margin: 0; }
QScrollBar:horizontal { background: transparent; height: 11px; margin: 0; }
QScrollBar::handle { background: @SCROLL@; border-radius: 4px; margin: 2px; }
QScrollBar::handle:vertical { min-height: 24px; }
QScrollBar::handle:horizontal { min-width: 24px; }
QScrollBar::handle:hover { background: @SCROLL_HOVER@; }
QScrollBar::add-line, QScrollBar::sub-line { width: 0; height: 0; border: none; background: none; }
QScrollBar::add-page, QScrollBar::sub-page { background: none; }

/* semantic labels the app may use: QLabel[role="warning"] etc. */
QLabel[role="muted"] { color: @TEXT_MUTED@; }
QLabel[role="warning"] { color: @WARNING@; }
QLabel[role="error"] { color: @ERROR@; }
QLabel[role="ok"] { color: @OK@; }
"""


def stylesheet(theme: str) -> str:
    text = STYLE_TEMPLATE.replace("@THEME@", theme)
    for key, value in sorted(PALETTES[theme].items(), key=lambda kv: -len(kv[0])):
        text = text.replace(f"@{key}@", value)
    if "@" in text:
        raise ValueError(f"unfilled placeholder in the {theme} stylesheet")
    return text


def main() -> None:
    app_dir = ASSETS / "icons" / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    (ASSETS / "icon.svg").write_text(app_icon_svg())
    images = {n: render_app_icon(n) for n in sorted(set(APP_SIZES) | set(ICNS_SIZES))}
    for n in APP_SIZES:
        images[n].save(app_dir / f"icon_{n}.png", optimize=True)
    images[512].save(ASSETS / "icon.png", optimize=True)
    ico_sizes = [n for n in APP_SIZES if n <= 256]
    images[256].save(ASSETS / "icon.ico", format="ICO", sizes=[(n, n) for n in ico_sizes],
                     append_images=[images[n] for n in ico_sizes if n != 256])
    images[1024].save(ASSETS / "icon.icns", format="ICNS",
                      append_images=[images[n] for n in ICNS_SIZES if n != 1024])
    for sub, colour in TOOLBAR_COLOURS.items():
        d = ASSETS / "icons" / "toolbar" / sub
        d.mkdir(parents=True, exist_ok=True)
        for name, inner in TOOLBAR.items():
            (d / f"{name}.svg").write_text(toolbar_svg(inner, colour))
    for sub, colour in UI_COLOURS.items():
        d = ASSETS / "icons" / "ui" / sub
        d.mkdir(parents=True, exist_ok=True)
        for name, inner in UI_GLYPHS.items():
            (d / f"{name}.svg").write_text(toolbar_svg(inner, colour).replace('stroke-width="2"', 'stroke-width="2.6"'))
    # the check mark sits on the accent colour in both themes: white, one file
    (ASSETS / "icons" / "ui" / "check.svg").write_text(
        toolbar_svg('<path d="M5 12.5l4.5 4.5L19 7.5"/>', "#ffffff").replace('stroke-width="2"', 'stroke-width="3.2"'))
    for theme in PALETTES:
        (ASSETS / f"style_{theme}.qss").write_text(stylesheet(theme))
    print(f"wrote app icon ({len(APP_SIZES)} PNG sizes, .ico, .icns, .svg) and "
          f"{len(TOOLBAR)} toolbar icons x {len(TOOLBAR_COLOURS)} themes and {len(PALETTES)} stylesheets under {ASSETS}")


if __name__ == "__main__":
    main()
