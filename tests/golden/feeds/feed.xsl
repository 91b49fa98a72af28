<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0"
  xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
  xmlns:atom="http://www.w3.org/2005/Atom"
  xmlns:fh="http://purl.org/syndication/history/1.0"
  exclude-result-prefixes="atom fh">
<xsl:output method="html" encoding="UTF-8" doctype-system="about:legacy-compat" indent="no"/>

<xsl:variable name="title" select="/atom:feed/atom:title | /rss/channel/title"/>
<xsl:variable name="self" select="(/atom:feed/atom:link[@rel='self'] | /rss/channel/atom:link[@rel='self'])/@href"/>
<xsl:variable name="current" select="(/atom:feed/atom:link[@rel='current'] | /rss/channel/atom:link[@rel='current'])/@href"/>
<xsl:variable name="older" select="(/atom:feed/atom:link[@rel='prev-archive'] | /rss/channel/atom:link[@rel='prev-archive'])/@href"/>
<xsl:variable name="home" select="/atom:feed/atom:link[@rel='alternate']/@href | /rss/channel/link"/>

<xsl:template match="/">
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title><xsl:value-of select="$title"/> (Web feed)</title>
<style>
:root { color-scheme: light dark; --fg: #1d1d1f; --muted: #5f6368; --bg: #fff; --line: #d9dce1; --accent: #0b57d0; --box: #f1f3f4; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8eaed; --muted: #a8adb4; --bg: #17181a; --line: #3c4043; --accent: #8ab4f8; --box: #26282b; } }
body { margin: 0; font: 1rem/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); overflow-wrap: anywhere; }
main { max-width: 48rem; margin: 0 auto; padding: 2rem 1rem; }
h1 { font-size: 1.8rem; line-height: 1.2; margin: 0 0 .5rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .25rem; }
h3 { font-size: 1.05rem; margin: 0; }
a { color: var(--accent); }
.about { background: var(--box); border-radius: .5rem; padding: 1rem; }
.about p { margin: 0 0 .5rem; }
input.address { box-sizing: border-box; width: 100%; font: .95rem ui-monospace, monospace; padding: .4rem; border: 1px solid var(--line); border-radius: .3rem; background: var(--bg); color: var(--fg); }
ul.items { list-style: none; padding: 0; margin: 0; }
ul.items li { padding: .8rem 0; border-bottom: 1px solid var(--line); }
.date { color: var(--muted); font-size: .9rem; }
</style>
</head>
<body>
<main>
<p class="date">Web feed</p>
<h1><xsl:value-of select="$title"/></h1>
<section class="about" aria-label="How to subscribe">
<p>This is a web feed: a feed reader app checks it for you and shows each new item as it is published.</p>
<p><label for="address">To subscribe, copy this address into your feed reader:</label></p>
<xsl:choose>
<xsl:when test="$current">
<input id="address" class="address" type="text" readonly="readonly" value="{$current}"/>
<p>This page is an archive of older items; the address above is the feed to subscribe to.</p>
</xsl:when>
<xsl:otherwise>
<input id="address" class="address" type="text" readonly="readonly" value="{$self}"/>
</xsl:otherwise>
</xsl:choose>
<p><a href="{$home}">Visit the website</a></p>
</section>
<h2>Items in this feed</h2>
<ul class="items">
<xsl:for-each select="/atom:feed/atom:entry">
<li>
<h3><a href="{(atom:link[@rel='alternate'] | atom:link[not(@rel)])[1]/@href}"><xsl:value-of select="atom:title"/></a></h3>
<xsl:variable name="day" select="substring(atom:published | atom:updated[not(../atom:published)], 1, 10)"/>
<xsl:call-template name="day"><xsl:with-param name="day" select="$day"/></xsl:call-template>
</li>
</xsl:for-each>
<xsl:for-each select="/rss/channel/item">
<li>
<h3><a href="{link}"><xsl:value-of select="title"/></a></h3>
<xsl:variable name="day"><xsl:call-template name="rss-day"><xsl:with-param name="date" select="pubDate"/></xsl:call-template></xsl:variable>
<xsl:call-template name="day"><xsl:with-param name="day" select="$day"/></xsl:call-template>
</li>
</xsl:for-each>
</ul>
<xsl:if test="$older">
<p><a rel="prev-archive" href="{$older}">Older items</a></p>
</xsl:if>
</main>
</body>
</html>
</xsl:template>

<!-- A day as <time>; its datetime attribute only when it is a YYYY-MM-DD. -->
<xsl:template name="day">
<xsl:param name="day"/>
<time class="date">
<xsl:if test="string-length($day) = 10 and substring($day, 5, 1) = '-' and substring($day, 8, 1) = '-'">
<xsl:attribute name="datetime"><xsl:value-of select="$day"/></xsl:attribute>
</xsl:if>
<xsl:value-of select="$day"/>
</time>
</xsl:template>

<!-- An RFC 822 date as the build writes it ("Sat, 02 Mar 2024 00:30:00 +0100") as the
     YYYY-MM-DD of its own zone (2024-03-02); anything else is shown as it is. -->
<xsl:template name="rss-day">
<xsl:param name="date"/>
<xsl:variable name="months" select="'JanFebMarAprMayJunJulAugSepOctNovDec'"/>
<xsl:variable name="rest" select="normalize-space(substring-after($date, ','))"/>
<xsl:variable name="day" select="substring-before($rest, ' ')"/>
<xsl:variable name="month" select="substring-before(substring-after($rest, ' '), ' ')"/>
<xsl:variable name="year" select="substring(substring-after(substring-after($rest, ' '), ' '), 1, 4)"/>
<xsl:variable name="before" select="string-length(substring-before($months, $month))"/>
<xsl:choose>
<xsl:when test="string-length($month) = 3 and contains($months, $month) and $before mod 3 = 0 and number($day) = number($day) and number($year) = number($year)">
<xsl:value-of select="concat($year, '-', format-number($before div 3 + 1, '00'), '-', format-number($day, '00'))"/>
</xsl:when>
<xsl:otherwise><xsl:value-of select="$date"/></xsl:otherwise>
</xsl:choose>
</xsl:template>
</xsl:stylesheet>
