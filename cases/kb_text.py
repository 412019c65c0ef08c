"""Chinese text as citizens speak it, turned into search terms.

Steps, in order: Unicode NFKC (full-width letters and digits to half-width), traditional to
simplified (OpenCC ``t2s``), lower case, greeting and filler removal, word segmentation with
jieba in search mode (which also emits the shorter words inside long ones), stop-word removal
and synonym folding onto one canonical word. The same analyser processes articles and queries,
so a caller's 电瓶车 meets an article's 电动车.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import cached_property

import jieba
import opencc

log = logging.getLogger(__name__)

# Colloquial variant -> the word articles use. Every pair here came from how callers actually
# phrase hotline questions; keep the canonical side the formal term.
SYNONYMS: dict[str, str] = {
    "电瓶车": "电动车",
    "电驴": "电动车",
    "电动自行车": "电动车",
    "小电驴": "电动车",
    "摩的": "摩托车",
    "煤气": "燃气",
    "天然气": "燃气",
    "液化气": "燃气",
    "驾照": "驾驶证",
    "车本": "驾驶证",
    "行驶本": "行驶证",
    "医保卡": "社保卡",
    "社会保障卡": "社保卡",
    "户口": "户籍",
    "户口本": "户口簿",
    "身份证件": "身份证",
    "娃": "孩子",
    "小孩": "孩子",
    "小朋友": "孩子",
    "新生儿": "孩子",
    "上学": "入学",
    "读书": "入学",
    "报名": "报名",
    "停电了": "停电",
    "没电": "停电",
    "断电": "停电",
    "没水": "停水",
    "断水": "停水",
    "水管爆了": "爆管",
    "水管破裂": "爆管",
    "路灯坏了": "路灯",
    "工钱": "工资",
    "薪水": "工资",
    "欠薪": "拖欠工资",
    "老板不给钱": "拖欠工资",
    "吵": "噪音",
    "噪声": "噪音",
    "扰民": "噪音",
    "的士": "出租车",
    "打的": "出租车",
    "网约车": "网约车",
    "狗": "犬",
    "流浪狗": "流浪犬",
    "野狗": "流浪犬",
    "猫": "猫",
    "房产证": "不动产权证",
    "房本": "不动产权证",
    "房产": "不动产",
    "退休金": "养老金",
    "养老保险": "养老保险",
    "公积金贷款": "公积金贷款",
    "营业执照": "营业执照",
    "执照": "营业执照",
    "摆摊": "占道经营",
    "小摊": "占道经营",
    "地摊": "占道经营",
    "乱停车": "违章停车",
    "乱停乱放": "违章停车",
    "违停": "违章停车",
    "井盖": "井盖",
    "垃圾没人收": "垃圾清运",
    "垃圾": "垃圾",
    "物业公司": "物业",
    "物管": "物业",
    "暖气": "供暖",
    "取暖": "供暖",
    "医保": "医疗保险",
    "异地就医": "异地就医",
    "快递": "快递",
    "外卖": "外卖",
    "打疫苗": "疫苗接种",
    "打针": "疫苗接种",
    "居住证": "居住证",
    "暂住证": "居住证",
    "低保": "最低生活保障",
    "残疾证": "残疾人证",
    "单子": "工单",
    "掉了": "丢失",
    "丢了": "丢失",
    "遗失": "丢失",
}

# Hotline vocabulary jieba's general dictionary splits or misses; segmented as whole words.
DOMAIN_WORDS: tuple[str, ...] = tuple(
    """上牌 挂牌 换牌 补牌 上户口 落户 迁户口 户籍 居住证 身份证 临时身份证 驾驶证 行驶证 换证 补证
    年检 年审 违章 违章停车 占道经营 公积金 提取 社保卡 养老金 养老保险 医疗保险 异地就医 备案
    报销 低保 最低生活保障 残疾人证 不动产 不动产权证 不动产登记 营业执照 个体工商户 食品安全
    拖欠工资 农民工 劳动仲裁 劳动合同 停水 停电 爆管 燃气 燃气泄漏 漏气 开户 过户 供暖 物业 物业费
    噪音 扰民 广场舞 流浪犬 犬只 狂犬疫苗 疫苗接种 路灯 井盖 垃圾清运 垃圾分类 出租车 网约车
    公交车 拒载 绕路 入学 报名 学位 幼儿园 义务教育 新生儿 出生证明 结婚登记 离婚登记 房屋租赁
    违建 违章建筑 渣土车 油烟 排污 黑臭水体 电动车 充电桩 飞线充电 消防通道 快递 外卖 预付卡
    退费 消费纠纷 假冒伪劣 价格欺诈 12345 热线 工单 投诉 举报 求助 建议 表扬""".split()
)

# Greetings and fillers said before the real question; removed from queries only.
_FILLER_PHRASES = (
    "喂喂",
    "喂",
    "你好",
    "您好",
    "哈喽",
    "同志",
    "师傅",
    "美女",
    "领导",
    "我想问一下",
    "我想问问",
    "我想问下",
    "想问一下",
    "想问下",
    "问一下",
    "问下",
    "请问一下",
    "请问",
    "麻烦问一下",
    "麻烦问下",
    "麻烦您",
    "麻烦你",
    "麻烦",
    "我想咨询一下",
    "咨询一下",
    "我想了解一下",
    "了解一下",
    "我想反映一下",
    "我想反映",
    "反映一下",
    "帮我查一下",
    "打扰一下",
    "不好意思",
    "谢谢你",
    "谢谢",
    "是这样的",
    "是这样",
    "怎么说呢",
    "这个这个",
    "那个那个",
    "就是说",
    "然后呢",
    "嗯嗯",
    "呃",
    "嗯",
    "啊",
    "哦",
    "呀",
    "吧",
    "呢",
    "嘛",
)
_FILLER_RE = re.compile(
    "|".join(re.escape(p) for p in sorted(_FILLER_PHRASES, key=len, reverse=True))
)

# Function words that carry no topic. Applied to both queries and articles.
STOP_WORDS: frozenset[str] = frozenset(
    """的 了 是 在 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 这些 那些 就 都 也 还 又 和 与
    及 或 或者 但 但是 而 并 吗 呢 吧 啊 呀 嘛 哦 嗯 呃 喂 么 什么 怎么 怎么样 怎样 如何 哪里 哪儿
    哪 哪个 哪些 多少 几 要 想 会 能 可以 可 应该 需要 得 地 着 过 被 把 让 给 对 向 从 到 为 为了
    因为 所以 如果 的话 就是 然后 现在 一下 一个 一些 有 没有 没 不 很 太 非常 比较 问 问问 请问
    请 您 你好 您好 谢谢 麻烦 一直 已经 自己 人 家 个 点 下 上 里 中 吗 咋 咋办 怎么办 办 弄 搞
    跟 说 讲 告诉 知道 看看 看 帮 帮忙 关于 这样 那样 之类 等 等等 以及 其他 其它 及其""".split()
)

_PUNCT_OR_SPACE = re.compile(r"^[\W_]+$", re.UNICODE)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")


class ChineseAnalyzer:
    """Turns text into search terms. Thread-safe; build one per process and reuse it.

    jieba's dictionary takes about a second to load, so it loads on first use, not at import.
    """

    def __init__(self, extra_words: Iterable[str] = ()) -> None:
        self._extra_words = tuple(extra_words)
        self._lock = threading.Lock()

    @cached_property
    def _t2s(self) -> opencc.OpenCC:
        return opencc.OpenCC("t2s")

    @cached_property
    def _tokenizer(self) -> jieba.Tokenizer:
        with self._lock:
            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            tok.initialize()
            # Make sure the words we fold and match on are segmented as whole words.
            for word in (*DOMAIN_WORDS, *SYNONYMS, *SYNONYMS.values(), *self._extra_words):
                if len(word) > 1:
                    tok.add_word(word, freq=20000)
            return tok

    def normalise(self, text: str) -> str:
        """NFKC, traditional -> simplified, lower case."""
        text = unicodedata.normalize("NFKC", text)
        if _CJK.search(text):
            text = self._t2s.convert(text)
        return text.lower()

    def strip_fillers(self, text: str) -> str:
        """Remove greetings and fillers; keep the text if nothing else would remain."""
        stripped = _FILLER_RE.sub(" ", text)
        return stripped if stripped.strip() else text

    def words(self, normalised: str) -> list[str]:
        """Segmented, stop-word-free, synonym-folded words of already normalised text."""
        out: list[str] = []
        for raw in self._tokenizer.lcut_for_search(normalised):
            word = raw.strip()
            if not word or _PUNCT_OR_SPACE.match(word) or word in STOP_WORDS:
                continue
            out.append(SYNONYMS.get(word, word))
        return out

    def document_terms(self, text: str) -> Counter[str]:
        return Counter(self.words(self.normalise(text)))

    def query_terms(self, text: str) -> list[str]:
        """Distinct terms of a query, in order of first appearance."""
        normalised = self.strip_fillers(self.normalise(text))
        return list(dict.fromkeys(self.words(normalised)))

    @staticmethod
    def bigrams(normalised: str) -> list[str]:
        """Overlapping CJK character pairs: a fallback when segmentation disagrees."""
        grams: list[str] = []
        for run in _CJK_RUN.findall(normalised):
            grams.extend(run[i : i + 2] for i in range(len(run) - 1))
        return grams


@functools.cache
def shared_analyzer() -> ChineseAnalyzer:
    """The process's analyser. It holds no per-request state, and building one loads jieba's
    dictionary (about a second), so every index and importer in a process shares this one."""
    return ChineseAnalyzer()
