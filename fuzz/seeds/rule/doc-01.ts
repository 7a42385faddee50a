# rules/lib.ts                        # a request rule
sub is_mobile( $ua ) {                import lib;
   return string.regexMatch(          if( lib.is_mobile( http.getHeader( "User-Agent" ) ) )
      $ua, "iPhone|Android" );           pool.use( "mobile" );
}
